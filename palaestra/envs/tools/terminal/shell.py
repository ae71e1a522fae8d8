"""`TerminalShell`: a bash shell over a sandbox session, one command per execution.

Each `run` is one execution of `bash -c` in the session (`palaestra.sandbox.SandboxSession`), with
stderr merged into stdout as in a terminal, no stdin, and the command's limits. What persists from
one command to the next:

    files       everything under /work (the start dir, HOME) and /tmp, for the whole episode
    cwd         the directory the last command ended in (a `cd` carries over)
    exports     exported variables (`export NAME=value`); plain shell variables, functions, aliases
                and background processes do not (every process is killed when its command ends)

cwd and exports are kept in `STATE_DIR` (under /tmp) by an EXIT trap, so a command stopped by a limit
leaves them as they were before it. Nothing survives the session: the next episode's shell starts
from the next task's files only.
"""

from __future__ import annotations

from palaestra.sandbox import ExecutionResult, Limits, SandboxSession

__all__ = ["STATE_DIR", "TerminalShell", "describe"]

STATE_DIR = "/tmp/.palaestra-shell"
_PROLOGUE = f"""
__ps={STATE_DIR}
if [ -r "$__ps/env" ]; then . "$__ps/env"; fi
if [ -r "$__ps/cwd" ]; then cd -- "$(<"$__ps/cwd")" 2>/dev/null || cd /work; fi
"""
# bash builtins only (no program to exec) but for the first command's `mkdir`
_SAVE = '[ -d "$__ps" ] || mkdir -p "$__ps"; pwd > "$__ps/cwd"; export -p > "$__ps/env"'
_COMMAND = "exec 2>&1 </dev/null\n" + _PROLOGUE + f"trap '{_SAVE}' EXIT\n" + 'eval "$1"\n'
_WRITE = _PROLOGUE + 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && realpath -- "$1"'
_READ = _PROLOGUE + 'cat -- "$1"'


def describe(result: ExecutionResult, limits: Limits) -> str:
    """How a command ended, for the agent: `[exit status N]` or which limit stopped it."""
    if result.limit == "wall_time":
        return f"[stopped: the command ran past its {limits.wall_time_s:g} s time limit]"
    if result.limit == "output":
        return f"[stopped: the command wrote more than {limits.max_output_bytes} bytes of output]"
    return f"[{result.describe()}]"


class TerminalShell:
    """A shell whose commands run in `session` (see the module docstring).

    Args:
        session: the episode's sandbox session (the shell does not close it).
        limits: each command's limits (time, CPU, output; memory, processes and disk are the session's).
    """

    def __init__(self, session: SandboxSession, limits: Limits):
        self.session = session
        self.limits = limits

    def run(self, command: str) -> ExecutionResult:
        """Run `command` with bash in the shell's cwd and exports; output is stdout and stderr merged."""
        return self.session.run(["bash", "-c", _COMMAND, "bash", command], limits=self.limits)

    def write_file(self, path: str, content: str) -> ExecutionResult:
        """Write `content` to `path` (relative to the cwd), creating parent dirs; stdout: its absolute path."""
        return self.session.run(["bash", "-c", _WRITE, "bash", path], stdin=content, limits=self.limits)

    def read_file(self, path: str) -> ExecutionResult:
        """The content of `path` (relative to the cwd) as stdout."""
        return self.session.run(["bash", "-c", _READ, "bash", path], limits=self.limits)

    def transcript(self, command: str) -> str:
        """`run(command)` as the agent sees it: the output, then how the command ended."""
        result = self.run(command)
        output = result.stdout + result.stderr
        if output and not output.endswith("\n"):
            output += "\n"
        return output + describe(result, self.limits)
