"""Load MBPP-, HumanEval- and APPS-style code problems from local files; nothing here touches the network.

Sources, read by `palaestra.envs.math.records.read_rows`: a `.jsonl` file, a `.json` file, a `.parquet`
file, or a folder written by `datasets`' `save_to_disk` (`dataset_split` picks a split of a saved
`DatasetDict`). Every task gets the id f"{source}-{hash:016x}", where hash is the 64-bit blake2b hash
of the prompt shown to the agent (`palaestra.envs.math.task.question_hash`).

Record styles:
    mbpp: {"text" (or "prompt", as in sanitized MBPP), "code", "test_list", optional
        "challenge_test_list", "test_setup_code", "test_imports"}. A function task. The entry point is
        the function that the first assert calls and the code defines. The prompt is the text followed
        by the first assert as an example. Public tests: the first assert. Hidden tests: test_list and
        challenge_test_list. Difficulty "easy".
    humaneval: {"prompt" (signature and docstring), "canonical_solution", "test", "entry_point"}. The
        reference is prompt + canonical_solution, and difficulty is "medium". When the body of
        `def check(candidate)` holds only asserts, each assert becomes one test with `candidate`
        renamed to the entry point. The rest of `test` (imports, helpers, not METADATA) becomes
        `setup_code`, and the first assert is public. Otherwise (loops, locals) the whole `test`
        becomes `setup_code` and there is one hidden test, `check(<entry_point>)`, with no public test.
    apps: {"question", "solutions" (JSON list of programs), "input_output" (JSON with "inputs",
        "outputs", optional "fn_name"), optional "difficulty", "starter_code"}. The reference is the
        first solution that parses as Python 3. Difficulty maps introductory/interview/competition
        (missing: interview) to easy/medium/hard. Without fn_name the task is stdio; inputs and outputs
        given as lists of lines are joined with "\\n". With fn_name it is a function task, and each
        test calls fn_name(*inputs). APPS wraps call-based outputs in a list, and its checker accepts
        either the list or its only element, so a one-element output [x] gives
        `assert fn(...) in ([x], x)` and any other output gives `assert fn(...) == output`. When the
        starter code or the solution defines `class Solution` (LeetCode style), `setup_code` binds
        `fn_name = Solution().fn_name`. Records without a Python 3 solution or without usable tests
        (values that are not Python literals, such as inf) are skipped. The count is logged as a
        warning, and if no record is left, the loader raises ValueError.
    auto (default): mbpp when the first record has "test_list", humaneval when it has
        "canonical_solution", apps when it has "input_output".
"""

from __future__ import annotations

import ast
import builtins
import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from palaestra.envs.code.task import CodeTask, CodeTest, Difficulty
from palaestra.envs.math.records import read_rows
from palaestra.envs.math.task import question_hash

__all__ = ["APPS_DIFFICULTIES", "STYLES", "load_code_records"]

logger = logging.getLogger(__name__)

STYLES: tuple[str, ...] = ("auto", "mbpp", "humaneval", "apps")
APPS_DIFFICULTIES: dict[str, Difficulty] = {
    "introductory": "easy",
    "interview": "medium",
    "competition": "hard",
}
_BUILTINS = frozenset(dir(builtins))


class _Unusable(Exception):
    """A record that is well formed but cannot become a task (APPS: no solution or no tests); skipped."""


# ---------------------------------------------------------------------------- field access


def _require(row: dict[str, Any], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in row]
    if missing:
        raise ValueError(f"lacks the field(s) {missing}; it has {sorted(row)}")


def _string(row: dict[str, Any], name: str, *, optional: bool = False) -> str:
    value = row.get(name)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"field {name!r} must be a string, got {type(value).__name__}")
    return value.replace("\r\n", "\n")  # MBPP's code has Windows line endings


def _string_list(row: dict[str, Any], name: str, *, optional: bool = False) -> list[str]:
    value = row.get(name)
    if value is None and optional:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"field {name!r} must be a list of strings, got {value!r}")
    return [item.strip() for item in value if item.strip()]


def _parse(source: str, what: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"{what} is not valid Python ({exc.msg}, line {exc.lineno})") from None


def _task_id(source: str, prompt: str) -> str:
    return f"{source}-{question_hash(prompt):016x}"


# ---------------------------------------------------------------------------- mbpp


def _called_function(test: str, code: str) -> str:
    """The function that `test` calls: the first call to a name `code` defines, else to a non-builtin."""
    defined = {
        node.name
        for node in _parse(code, "field 'code'").body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    calls = sorted(
        (node for node in ast.walk(_parse(test, f"test {test!r}")) if isinstance(node, ast.Call)),
        key=lambda node: (node.lineno, node.col_offset),
    )
    names = [node.func.id for node in calls if isinstance(node.func, ast.Name)]
    found = next((n for n in names if n in defined), None) or next(
        (n for n in names if n not in _BUILTINS), None
    )
    if found is None:
        raise ValueError(f"cannot tell which function the first test calls: {test!r}")
    return found


def _from_mbpp(row: dict[str, Any]) -> CodeTask:
    _require(row, ("code", "test_list"))
    text_field = "text" if "text" in row else "prompt"
    _require(row, (text_field,))
    text, code = _string(row, text_field).strip(), _string(row, "code")
    tests = _string_list(row, "test_list") + _string_list(row, "challenge_test_list", optional=True)
    if not text or not tests:
        raise ValueError(f"empty {text_field!r} or 'test_list' field")
    setup = "\n".join(
        [*_string_list(row, "test_imports", optional=True), _string(row, "test_setup_code", optional=True)]
    ).strip()
    prompt = f"{text}\n\nYour code should pass this test:\n\n{tests[0]}"
    hidden = tuple(CodeTest(statement=test) for test in tests)
    return CodeTask(
        task_id=_task_id("mbpp", prompt),
        prompt=prompt,
        kind="function",
        entry_point=_called_function(tests[0], code),
        public_tests=hidden[:1],
        hidden_tests=hidden,
        reference_solution=code,
        difficulty="easy",
        source="mbpp",
        setup_code=setup,
    )


# ---------------------------------------------------------------------------- humaneval


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(self.new, node.ctx) if node.id == self.old else node


def _is_metadata(node: ast.stmt) -> bool:
    return isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "METADATA" for t in node.targets
    )


def _humaneval_tests(test: str, entry: str) -> tuple[list[str], str, bool]:
    """Statements, setup code, and whether the asserts were split out of `check` one by one."""
    module = _parse(test, "field 'test'")
    check = next((n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None or not check.args.args:
        raise ValueError("field 'test' defines no `def check(candidate)`")
    body = check.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring
    if body and all(isinstance(node, ast.Assert) for node in body):
        rename = _Rename(check.args.args[0].arg, entry)
        statements = [ast.unparse(rename.visit(node)) for node in body]
        rest = [node for node in module.body if node is not check and not _is_metadata(node)]
        return statements, ast.unparse(ast.Module(body=rest, type_ignores=[])), True
    return [f"check({entry})"], test, False


def _from_humaneval(row: dict[str, Any]) -> CodeTask:
    _require(row, ("prompt", "canonical_solution", "test", "entry_point"))
    signature, entry = _string(row, "prompt"), _string(row, "entry_point").strip()
    statements, setup, split_out = _humaneval_tests(_string(row, "test"), entry)
    prompt = (
        f"Write the Python function `{entry}`, with this signature and docstring, and any imports it "
        f"needs:\n\n```python\n{signature.strip()}\n```"
    )
    hidden = tuple(CodeTest(statement=statement) for statement in statements)
    return CodeTask(
        task_id=_task_id("humaneval", prompt),
        prompt=prompt,
        kind="function",
        entry_point=entry,
        public_tests=hidden[:1] if split_out else (),
        hidden_tests=hidden,
        reference_solution=signature + _string(row, "canonical_solution"),
        difficulty="medium",
        source="humaneval",
        setup_code=setup,
    )


# ---------------------------------------------------------------------------- apps


def _json_field(row: dict[str, Any], name: str) -> Any:
    """A field holding JSON text (or, in some exports, the decoded value); "" and None give None."""
    value = row.get(name)
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"field {name!r} is not valid JSON ({exc.msg})") from None


def _literal(value: Any) -> str | None:
    """`repr(value)` when it reads back as the same Python literal, else None."""
    text = repr(value)
    try:
        return text if ast.literal_eval(text) == value else None
    except (ValueError, SyntaxError):
        return None


def _apps_call_test(fn: str, args: Any, output: Any) -> CodeTest | None:
    args = args if isinstance(args, list) else [args]
    arg_texts = [text for text in map(_literal, args) if text is not None]
    expected = _literal(output)
    if expected is None or len(arg_texts) != len(args):
        return None
    call = f"{fn}({', '.join(arg_texts)})"
    if isinstance(output, list) and len(output) == 1:
        return CodeTest(statement=f"assert {call} in ({expected}, {_literal(output[0])})")
    return CodeTest(statement=f"assert {call} == {expected}")


def _apps_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    return None


def _apps_stdio_test(stdin: Any, stdout: Any) -> CodeTest | None:
    stdin_text, stdout_text = _apps_text(stdin), _apps_text(stdout)
    if stdin_text is None or stdout_text is None:
        return None
    return CodeTest(stdin=stdin_text, expected_stdout=stdout_text)


def _first_python3(solutions: Any) -> str:
    for solution in solutions if isinstance(solutions, list) else []:
        if isinstance(solution, str) and solution.strip():
            try:
                ast.parse(solution)
            except SyntaxError:
                continue  # APPS holds Python 2 solutions too
            return solution.replace("\r\n", "\n")
    raise _Unusable("no solution that parses as Python 3")


def _apps_tests(row: dict[str, Any]) -> tuple[str | None, tuple[CodeTest, ...]]:
    """The record's fn_name (None for stdio) and its usable tests."""
    io = _json_field(row, "input_output") or {}
    inputs, outputs = (io.get("inputs"), io.get("outputs")) if isinstance(io, dict) else (None, None)
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise _Unusable("no inputs/outputs lists in 'input_output'")
    if len(inputs) != len(outputs):
        raise _Unusable("different numbers of inputs and outputs")
    fn = io.get("fn_name")
    if fn is not None and (not isinstance(fn, str) or not fn.isidentifier()):
        raise _Unusable(f"fn_name {fn!r}, not a Python name")
    pairs = zip(inputs, outputs, strict=True)
    if fn is None:
        tests = [_apps_stdio_test(stdin, stdout) for stdin, stdout in pairs]
    else:
        tests = [_apps_call_test(fn, args, output) for args, output in pairs]
    usable = tuple(test for test in tests if test is not None)
    if not usable:
        raise _Unusable("no usable tests")
    return fn, usable


def _from_apps(row: dict[str, Any]) -> CodeTask:
    _require(row, ("question", "solutions", "input_output"))
    question = _string(row, "question").strip()
    if not question:
        raise ValueError("empty 'question' field")
    level = row.get("difficulty") or "interview"
    if level not in APPS_DIFFICULTIES:
        raise ValueError(f"difficulty={level!r}; APPS difficulties are {list(APPS_DIFFICULTIES)}")
    solution = _first_python3(_json_field(row, "solutions"))
    fn, tests = _apps_tests(row)
    starter = _string(row, "starter_code", optional=True).strip()
    setup = ""
    if fn is None:
        prompt = f"{question}\n\nRead the input from standard input and print the answer to standard output."
    elif starter:
        prompt = f"{question}\n\nComplete this code; the tests call `{fn}`:\n\n```python\n{starter}\n```"
    else:
        prompt = f"{question}\n\nWrite a function `{fn}`; the tests call it with the inputs described above."
    if fn is not None and ("class Solution" in starter or "class Solution" in solution):  # LeetCode style
        setup = f'if "Solution" in globals() and "{fn}" not in globals():\n    {fn} = Solution().{fn}\n'
    return CodeTask(
        task_id=_task_id("apps", prompt),
        prompt=prompt,
        kind="stdio" if fn is None else "function",
        entry_point=fn,
        public_tests=tests[:1],
        hidden_tests=tests,
        reference_solution=solution,
        difficulty=APPS_DIFFICULTIES[level],
        source="apps",
        setup_code=setup,
    )


# ---------------------------------------------------------------------------- loading

_CONVERTERS: dict[str, Callable[[dict[str, Any]], CodeTask]] = {
    "mbpp": _from_mbpp,
    "humaneval": _from_humaneval,
    "apps": _from_apps,
}


def _detect_style(path: Path, row: dict[str, Any]) -> str:
    if "test_list" in row:
        return "mbpp"
    if "canonical_solution" in row:
        return "humaneval"
    if "input_output" in row:
        return "apps"
    raise ValueError(
        f"{path}: cannot tell the record style from the fields {sorted(row)}; expected MBPP (test_list), "
        "HumanEval (canonical_solution) or APPS (input_output) records. Pass style=..."
    )


def load_code_records(
    path: str | Path, *, style: str = "auto", dataset_split: str | None = None
) -> list[CodeTask]:
    """Load code problems from a local file or `save_to_disk` folder (see the module docstring).

    Args:
        path: a .jsonl, .json or .parquet file, or a `save_to_disk` folder.
        style: "auto", "mbpp", "humaneval" or "apps".
        dataset_split: the split of a saved `DatasetDict`.

    Returns:
        The tasks, in file order, with `source` set to the style's name.

    Raises:
        FileNotFoundError: nothing exists at `path`.
        ValueError: unreadable source, or a malformed record (the message names the file and the
            record's index), or no usable record at all.
    """
    if style not in STYLES:
        raise ValueError(f"style={style!r}; choose one of {STYLES}")
    p = Path(path).expanduser()
    rows = read_rows(p, dataset_split=dataset_split)
    convert = _CONVERTERS[_detect_style(p, rows[0]) if style == "auto" else style]
    tasks: list[CodeTask] = []
    skipped: Counter[str] = Counter()
    for index, row in enumerate(rows):
        try:
            tasks.append(convert(row))
        except _Unusable as exc:
            skipped[str(exc)] += 1
        except ValueError as exc:
            raise ValueError(f"{p}: record {index}: {exc}") from None
    reasons = ", ".join(f"{count} with {reason}" for reason, count in skipped.most_common())
    if not tasks:
        raise ValueError(f"{p}: none of its {len(rows)} records is usable ({reasons})")
    if skipped:
        logger.warning("%s: skipped %d of %d records (%s)", p, skipped.total(), len(rows), reasons)
    return tasks
