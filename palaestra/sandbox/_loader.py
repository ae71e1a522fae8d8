"""The warm sandbox's loader: runs INSIDE a pre-started sandbox, as `python3 -I /palaestra-loader.py`.

A `LocalSandbox` slot keeps one sandbox started ahead of time (namespaces, mounts and this interpreter
already up) and hands it exactly one job, so the caller does not wait for the start-up. The job
arrives on stdin: an 8-byte big-endian length, a `marshal`-ed `(argv, [(name, bytes), ...])`, then the
program's own stdin. The loader writes the files into /work and then either runs a
`python -I script [args]` command in this very interpreter (a fresh `__main__`, the script's
`sys.argv`; tracebacks start at the script) or execs any other command. It never runs a second job.
Only built-in modules are used before the job runs, so the program starts from a near-pristine
interpreter.
"""

import _signal  # type: ignore[import-not-found]  # signal.py's C module: built in, no stub
import marshal
import os
import sys


def _on_cpu_limit(signum, frame):
    """RLIMIT_CPU's soft limit was reached: end as a shell reports death by SIGXCPU (128 + N).

    The program is PID 1 of its pid namespace, where a signal's default action does not apply, so
    without this handler SIGXCPU would be ignored and only the hard limit's SIGKILL would end it."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not a built-in module (see the module docstring)
            stream.flush()
        except BaseException:  # interrupted inside a write: what is buffered is lost
            pass
    os._exit(128 + signum)


def _read_exact(size):
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            os._exit(125)  # the host went away before sending a whole job
        data += chunk
    return data


def _run_script(script, argv):
    script_path = os.path.abspath(script)  # as `python script` sets __file__ and traceback paths
    main = type(sys)("__main__")
    main.__file__ = script_path
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    sys.argv = argv
    with open(script, "rb") as f:
        source = f.read()
    try:
        code = compile(source, script_path, "exec")
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        import traceback

        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # skip this frame
        traceback.print_exception(type(exc), exc, tb)
        sys.stderr.flush()
        raise SystemExit(1) from None


def _main():
    size = int.from_bytes(_read_exact(8), "big")
    argv, files = marshal.loads(_read_exact(size))
    for name, content in files:
        path = "/work/" + name
        parent = os.path.dirname(path)
        if parent != "/work":
            os.makedirs(parent, exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, 0o644)
    own = (sys.executable, os.path.realpath(sys.executable))
    if len(argv) >= 3 and argv[0] in own and argv[1] == "-I" and not argv[2].startswith("-"):
        _run_script(argv[2], argv[2:])
    else:
        os.execvp(argv[0], argv)


_signal.signal(_signal.SIGXCPU, _on_cpu_limit)
_main()
