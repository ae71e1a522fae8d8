"""`TerminalEnv`: a multi-turn shell in the code sandbox; a task's test script judges the final state.

An episode: reset picks a task (by seed, or `options={"task_id": ...}`) and opens a sandbox session
with the task's files in /work. Each reply calls tools: `run(command)` runs a bash command
(`TerminalShell`: cwd and exports carry over, files persist, every command has time and output
limits), `write_file(path, content)` and `read_file(path)` move text without shell quoting. A reply
without a tool call ends the episode: the task's test script runs in the same sandbox state and the
reward is 1.0 if it exits 0, else 0.0. The session is closed when the episode ends, so nothing of
it reaches the next episode.

`info["expert_action"]` is the task's next expert step as a tool call (one per turn), then a reply
without one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from palaestra.envs.core import CurrentTask, StepOutcome
from palaestra.envs.tools.base import ToolEnv, ToolError
from palaestra.envs.tools.terminal.shell import TerminalShell
from palaestra.envs.tools.terminal.tasks import DIFFICULTIES, TerminalTask, bundled_tasks, load_tasks
from palaestra.sandbox import LazySandbox, Limits, Sandbox, SandboxConfig, SandboxSession
from palaestra.tools import ToolCall, function_tool

__all__ = ["COMMAND_LIMITS", "DEFAULT_MAX_TURNS", "TerminalEnv", "terminal_tools"]

DEFAULT_MAX_TURNS = 24
COMMAND_LIMITS = Limits(
    wall_time_s=10.0,
    cpu_time_s=10.0,
    memory_mb=512,
    max_processes=64,
    max_output_bytes=16 * 1024,
    max_file_size_mb=16,
    disk_mb=64,
)
"""Each command's limits (time, CPU, output, file size); memory, processes and disk hold per episode."""
_DEFAULT_SANDBOX = SandboxConfig(limits=COMMAND_LIMITS, max_concurrency=16, warm=False)
"""The local sandbox; 16 slots: each running episode holds one (a rollout of more envs needs more)."""
_DONE = "The task is done."
_SYSTEM = (
    "You work in a bash shell inside a Linux sandbox without network access. The task's files are in "
    "/work, your starting directory. Use the tools: `run` runs a shell command (the directory you `cd` "
    "to and the variables you `export` carry over to the next command; background processes do not), "
    "`write_file` writes a file, `read_file` shows one. Available: bash, coreutils, grep, sed, awk, find, "
    "tar, gzip, diff and python3 with its standard library (no pip, no compilers, no make). Each command "
    "may run {seconds:g} s and print {kib} KiB. When the task is done, reply without a tool call: a "
    "hidden test then checks the files. You have at most {turns} replies."
)


def terminal_tools(limits: Limits) -> list[dict[str, Any]]:
    """The tool declarations (`run`, `write_file`, `read_file`) for commands with `limits`."""
    path = {"type": "string", "description": "a file path, relative to the current directory or absolute"}
    return [
        function_tool(
            "run",
            "Run a bash command in the current directory and return its output (stdout and stderr "
            "together) and exit status. The directory after `cd` and `export`ed variables carry over to "
            f"the next command; files persist. Limits: {limits.wall_time_s:g} s and "
            f"{limits.max_output_bytes} bytes of output per command; no input, no network.",
            {
                "type": "object",
                "properties": {"command": {"type": "string", "minLength": 1}},
                "required": ["command"],
                "additionalProperties": False,
            },
        ),
        function_tool(
            "write_file",
            "Write text to a file (created, or replaced), making missing parent directories.",
            {
                "type": "object",
                "properties": {"path": path, "content": {"type": "string"}},
                "required": ["path", "content"],
                "additionalProperties": False,
            },
        ),
        function_tool(
            "read_file",
            "Return the text of a file.",
            {
                "type": "object",
                "properties": {"path": path},
                "required": ["path"],
                "additionalProperties": False,
            },
        ),
    ]


class TerminalEnv(CurrentTask[TerminalTask], LazySandbox, ToolEnv):
    """Shell tasks in the sandbox, judged by a test script (see the module docstring).

    Args:
        difficulty: "easy", "medium", "hard", or None for every task.
        tasks: a YAML task file (see `palaestra.envs.tools.terminal.tasks`) instead of the bundled tasks.
        max_turns: replies per episode (tool-calling ones included).
        sandbox: `SandboxConfig`, its dict form, or a `Sandbox` (default: the shared local sandbox
            with 16 slots; `{"backend": "docker"}` for containers; a dict's missing keys take those
            defaults). Each running episode holds a slot: `max_concurrency` bounds the episodes
            running at once (a 17th waits up to 60 s for a free slot, then fails).
        limits: each command's limits; its memory, process and disk limits hold for the whole episode.
        test_time_s: wall-time limit of the task's test script.
        tool_parser: the reply format of tool calls ("auto", "hermes", "json", ...).
        render_mode: None or "ansi".
    """

    metadata: dict[str, Any] = {**ToolEnv.metadata, "blocking_step": True}  # noqa: RUF012 (gym.Env's type)

    def __init__(
        self,
        *,
        difficulty: str | None = None,
        tasks: str | Path | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
        sandbox: SandboxConfig | dict | Sandbox | None = None,
        limits: Limits | dict | None = None,
        test_time_s: float = 30.0,
        tool_parser: str = "auto",
        render_mode: str | None = None,
    ):
        if difficulty is not None and difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty={difficulty!r}; choose one of {DIFFICULTIES} or None")
        if test_time_s <= 0:
            raise ValueError(f"test_time_s={test_time_s}; it must be > 0")
        super().__init__(
            max_turns=max_turns, tool_parser=tool_parser, max_result_chars=24_000, render_mode=render_mode
        )
        pool = load_tasks(tasks) if tasks is not None else list(bundled_tasks())
        self.task_pool = [t for t in pool if difficulty is None or t.difficulty == difficulty]
        if not self.task_pool:
            raise ValueError(
                f"no terminal task with difficulty={difficulty!r} in {tasks or 'the bundled tasks'}"
            )
        self.limits = Limits.model_validate(limits) if limits is not None else COMMAND_LIMITS
        self.test_limits = self.limits.model_copy(
            update={"wall_time_s": test_time_s, "cpu_time_s": test_time_s}
        )
        self.tools = terminal_tools(self.limits)
        self.system_prompt = _SYSTEM.format(
            seconds=self.limits.wall_time_s, kib=self.limits.max_output_bytes // 1024, turns=max_turns
        )
        if isinstance(sandbox, dict):  # a partial config: the terminal's defaults fill the rest
            sandbox = _DEFAULT_SANDBOX.model_copy(
                update=SandboxConfig.model_validate(sandbox).model_dump(exclude_unset=True)
            )
        self._sandbox_spec = sandbox if sandbox is not None else _DEFAULT_SANDBOX
        self._session: SandboxSession | None = None
        self._shell: TerminalShell | None = None
        self._tool_turns = 0

    @property
    def shell(self) -> TerminalShell:
        """The running episode's shell (for tests and tools built on the env)."""
        if self._shell is None:
            raise RuntimeError("no running episode; call reset() first")
        return self._shell

    # -- episode -----------------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        options = dict(options or {})
        task_id = options.pop("task_id", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; TerminalEnv takes task_id")
        if task_id is not None:
            chosen = [t for t in self.task_pool if t.id == task_id]
            if not chosen:
                raise ValueError(f"task_id={task_id!r} is not among this env's {len(self.task_pool)} tasks")
            self._task = chosen[0]
        else:
            self._task = self.task_pool[int(self.rng.integers(len(self.task_pool)))]
        self._close_session()
        self._session = self.sandbox.session(files=self._task.files, limits=self.limits)
        self._shell = TerminalShell(self._session, self.limits)
        self._tool_turns = 0
        info = {
            "task_id": self._task.id,
            "difficulty": self._task.difficulty,
            "category": self._task.category,
            "expert_action": self._expert_action(),
        }
        return self._task.prompt, info

    def _expert_action(self) -> str:
        """The task's expert step for this turn (one call per turn), then the final reply."""
        steps = self.task.expert
        if self._tool_turns >= len(steps):
            return _DONE
        name, arguments = steps[self._tool_turns].tool
        return self.format_calls([ToolCall(name, arguments, f"call_{self._tool_turns}")])

    def _step(self, action: str) -> StepOutcome:
        outcome = super()._step(action)
        if outcome.info.get("role") == "tool":
            self._tool_turns += 1
        if outcome.terminated or self.turn + 1 >= self.max_turns:
            self._close_session()  # the episode is over: give the sandbox slot back now
        else:
            outcome.info["expert_action"] = self._expert_action()
        return outcome

    def _call_tool(self, call: ToolCall) -> str:
        if self._shell is None:
            raise RuntimeError("no running episode; call reset() first")
        args = call.arguments
        if call.name == "run":
            return self._shell.transcript(args["command"])
        if call.name == "write_file":
            result = self._shell.write_file(args["path"], args["content"])
            if not result.ok:
                raise ToolError(f"could not write {args['path']}: {(result.stdout + result.stderr).strip()}")
            return f"wrote {len(args['content'].encode())} bytes to {result.stdout.strip()}"
        result = self._shell.read_file(args["path"])
        if not result.ok:
            raise ToolError(f"could not read {args['path']}: {(result.stdout + result.stderr).strip()}")
        return result.stdout

    def _finish(self, answer: str) -> StepOutcome:
        if self._session is None:
            raise RuntimeError("no running episode; call reset() first")
        result = self._session.run(["bash", "-c", self.task.test], limits=self.test_limits)
        self._close_session()
        passed = result.ok
        output = (result.stdout + result.stderr).strip()
        observation = (
            "The task's test passed." if passed else f"The task's test failed ({result.describe()})."
        )
        return StepOutcome(
            observation=observation,
            reward=float(passed),
            terminated=True,
            success=passed,
            info={"role": "user", "test_output": output[-2000:]},
        )

    def _close_session(self) -> None:
        session, self._session, self._shell = self._session, None, None
        if session is not None:
            session.close()

    def close(self) -> None:
        self._close_session()
        super().close()
