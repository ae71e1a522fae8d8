"""Test harness that runs INSIDE the sandbox (standard library only, Python >= 3.8).

Reads one JSON spec from stdin and prints one JSON report line, prefixed with `@@palaestra-report@@`:

    spec:   {"kind": "function" | "stdio", "solution": str, "setup": str,
             "tests": [{"statement": str} | {"stdin": str, "expected_stdout": str}],
             "timeout_s": float, "max_output": int}
    report: {"compile_error": str | None,
             "tests": [{"status": "pass" | "fail" | "error" | "timeout", "message": str, "output": str}]}

Trust boundary: this parent process never executes the solution. It compiles it (compile() runs
nothing) and runs each test in a child: a fork for function tests (the child executes the solution, the
task's setup code, then the test), a fresh interpreter for stdio tests (the parent compares the output). The
parent makes itself non-dumpable first, so children (same uid) cannot ptrace it or open its
/proc/<pid>/fd and forge the report; a test passes only if the child reports completion after the
test's last statement, so `sys.exit(0)` / `os._exit(0)` before an assertion is a failure. Equality
asserts (`assert A == B`) are judged strictly: builtin values must match in type as well as value
(ints and floats compare as numbers), so an object whose `__eq__` always returns True does not pass.
"""

import ast
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback

REPORT_PREFIX = "@@palaestra-report@@"
_NUMBERS = (int, float, complex)
_SEQUENCES = (list, tuple)
_ATOMS = (str, bytes, bool, type(None))


def _make_non_dumpable():
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass  # python3-minimal images may lack ctypes; the sandbox still contains the program


def strict_equal(left, right):
    """`left == right`, with types checked for builtin values (recursively through containers)."""
    tl, tr = type(left), type(right)
    if tl in _NUMBERS and tr in _NUMBERS:
        return left == right
    if tl is bool or tr is bool or tl in _ATOMS or tr in _ATOMS:
        return tl is tr and left == right
    if tl in _SEQUENCES or tr in _SEQUENCES:
        return tl is tr and len(left) == len(right) and all(map(strict_equal, left, right))
    if tl is dict or tr is dict:
        if tl is not tr or len(left) != len(right):
            return False
        return all(k in left and strict_equal(left[k], v) for k, v in right.items())
    if tl in (set, frozenset) or tr in (set, frozenset):
        return tl is tr and left == right and all(type(x) in _NUMBERS + _ATOMS + (tuple,) for x in left)
    return left == right


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _judge(left, right):
    if not strict_equal(left, right):
        raise AssertionError("expected " + _short(right) + ", got " + _short(left))


class _StrictAsserts(ast.NodeTransformer):
    """`assert A == B` -> `__palaestra_judge__(A, B)` (judged strictly, with the values in the message)."""

    def visit_Assert(self, node):
        test = node.test
        if (
            node.msg is None
            and isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)
        ):
            call = ast.Call(
                func=ast.Name(id="__palaestra_judge__", ctx=ast.Load()),
                args=[test.left, test.comparators[0]],
                keywords=[],
            )
            return ast.copy_location(ast.Expr(value=call), node)
        return node


def _compile_test(statement):
    tree = _StrictAsserts().visit(ast.parse(statement, "<test>", "exec"))
    ast.fix_missing_locations(tree)
    return compile(tree, "<test>", "exec")


def _read_capped(fd, limit, deadline):
    """Read `fd` until EOF or `deadline`; keep `limit` bytes. Returns (data, timed_out)."""
    chunks, kept = [], 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), True
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        data = os.read(fd, 65536)
        if not data:
            return b"".join(chunks), False
        if kept < limit:
            chunks.append(data[: limit - kept])
            kept += min(len(data), limit - kept)


def _run_function_test(solution_code, setup_code, statement, timeout_s, max_output):
    try:
        test_code = _compile_test(statement)
    except SyntaxError as exc:
        return {"status": "error", "message": "test does not parse: " + str(exc), "output": ""}
    out_r, out_w = os.pipe()
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the only place untrusted code runs
        try:
            os.close(out_r)
            os.close(status_r)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = sys.stdout
            namespace = {"__name__": "__main__", "__builtins__": __builtins__}
            exec(solution_code, namespace)
            exec(setup_code, namespace)
            namespace["__palaestra_judge__"] = _judge
            exec(test_code, namespace)
            result = {"status": "pass", "message": ""}
        except AssertionError as exc:
            result = {"status": "fail", "message": str(exc) or "assertion failed"}
        except BaseException as exc:
            lines = traceback.format_exception_only(type(exc), exc)
            result = {"status": "error", "message": "".join(lines).strip()[-500:]}
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        try:
            os.write(status_w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(out_w)
    os.close(status_w)
    deadline = time.monotonic() + timeout_s
    output, timed_out = _read_capped(out_r, max_output, deadline)
    status, _ = _read_capped(status_r, 4096, deadline if not timed_out else time.monotonic() + 0.1)
    if timed_out or not status:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(out_r)
    os.close(status_r)
    text = output.decode("utf-8", "replace")
    if timed_out:
        return {"status": "timeout", "message": f"timed out after {timeout_s:g}s", "output": text}
    try:
        result = json.loads(status.decode())
    except ValueError:
        result = {"status": "error", "message": "the program exited before the test finished"}
    result["output"] = text
    return result


def _normalise(text):
    """Kept identical to palaestra.envs.code.task.outputs_match (a test checks they agree)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _run_stdio_test(stdin, expected, timeout_s, max_output):
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "solution.py"],
            input=stdin.encode(),
            capture_output=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[:max_output].decode("utf-8", "replace")
        return {"status": "timeout", "message": f"timed out after {timeout_s:g}s", "output": out}
    out = proc.stdout[:max_output].decode("utf-8", "replace")
    err = proc.stderr[-max_output:].decode("utf-8", "replace")
    if proc.returncode != 0:
        last = err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}"
        return {"status": "error", "message": last[-500:], "output": out + err}
    if _normalise(proc.stdout.decode("utf-8", "replace")) == _normalise(expected):
        return {"status": "pass", "message": "", "output": out}
    message = "expected output " + _short(_normalise(expected)) + ", got " + _short(_normalise(out))
    return {"status": "fail", "message": message, "output": out}


def main():
    _make_non_dumpable()
    spec = json.loads(sys.stdin.read())
    sys.stdin.close()
    solution = spec["solution"]
    report = {"compile_error": None, "tests": []}
    try:
        solution_code = compile(solution, "solution.py", "exec")
        setup_code = compile(spec.get("setup", ""), "<setup>", "exec")
    except (SyntaxError, ValueError) as exc:
        lines = traceback.format_exception_only(type(exc), exc)
        report["compile_error"] = "".join(lines).strip()[-1000:]
        print(REPORT_PREFIX + json.dumps(report), flush=True)
        return
    if spec["kind"] == "stdio":
        with open("solution.py", "w") as f:
            f.write(solution)
    for test in spec["tests"]:
        if spec["kind"] == "stdio":
            result = _run_stdio_test(
                test["stdin"], test["expected_stdout"], spec["timeout_s"], spec["max_output"]
            )
        else:
            result = _run_function_test(
                solution_code, setup_code, test["statement"], spec["timeout_s"], spec["max_output"]
            )
        report["tests"].append(result)
    print(REPORT_PREFIX + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
