"""`MCPEnv`: tasks solved with the tools of an MCP server, judged by a task-specific check.

Each episode connects to its task's server (a stdio command started for the episode, or a streamable
HTTP URL), lists the server's tools and declares them as `self.tools` (OpenAI function schemas made
from the MCP tools' input schemas). The agent's tool calls run through the `mcp` SDK's client session;
a reply without a call is the final answer, and the task's check judges the episode (the answer, and
the server's state read with tool calls after the episode, in the same session). Then the session is
closed and the server's process tree ended.

    agent's call fails             result `isError`, or a JSON-RPC error: the agent sees "Error: ..."
    server died or hung            `MCPServerError` (not a ToolError): the rollout records the episode
                                   as failed with the cause; the server's processes are ended
    reward                         1 when the check passes, else 0; the last step's
                                   `info["check_failures"]` says what failed

The expert (`info["expert_action"]`) replays the task's solution: its calls, one reply at a time, then
its answer; it moves on when the agent's reply makes the calls it suggested.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import Any

from mcp.shared.exceptions import MCPError

from palaestra.envs.core import CurrentTask, StepOutcome, TextEnv, draw_task
from palaestra.envs.tools.base import ToolEnv, ToolError
from palaestra.envs.tools.mcp.client import DrivenLoop, MCPConnection, MCPServerError, resolve_command
from palaestra.envs.tools.mcp.tasks import BUNDLED_TASKS, MCPTask, StdioServer, load_tasks
from palaestra.tools.calls import ToolCall
from palaestra.tools.schema import function_tool

__all__ = ["MCPEnv", "result_text", "tool_declaration"]

SYSTEM_PROMPT = (
    "You can use the tools of an MCP server. Call them to do the task; when it is done, reply with the "
    "final answer only, without a tool call."
)


def tool_declaration(tool: Any) -> dict[str, Any]:
    """An MCP tool (`mcp.types.Tool`) as an OpenAI function declaration."""
    schema = dict(tool.input_schema or {"type": "object", "properties": {}})
    schema.pop("title", None)  # the SDK's generated model name ("addArguments") says nothing to the agent
    return function_tool(tool.name, tool.description or tool.title or tool.name, schema)


def result_text(result: Any) -> str:
    """The text of a `CallToolResult`: its text blocks (other content named by type), or else its
    structured content as JSON."""
    parts: list[str] = []
    for block in result.content:
        text = getattr(block, "text", None)
        resource_text = getattr(getattr(block, "resource", None), "text", None)
        if isinstance(text, str):
            parts.append(text)
        elif isinstance(resource_text, str):
            parts.append(resource_text)
        else:
            parts.append(f"[{block.type} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class MCPEnv(CurrentTask[MCPTask], ToolEnv):
    """Tool-use tasks over MCP servers (see the module docstring; the task file format is in
    `palaestra.envs.tools.mcp.tasks`).

    Args:
        tasks: the task file (default: the bundled tasks over the bundled calculator and key-value
            store servers).
        call_timeout_s: a tool call not answered within this many seconds fails the episode.
        connect_timeout_s: starting the server, `initialize` and `tools/list` must take no longer.
        max_turns, tool_parser, max_calls_per_turn, max_result_chars, render_mode: see `ToolEnv`.
    """

    metadata: dict[str, Any] = {**TextEnv.metadata, "blocking_step": True}  # noqa: RUF012 (gym.Env's type)

    def __init__(
        self,
        *,
        tasks: str | Path | None = None,
        call_timeout_s: float = 30.0,
        connect_timeout_s: float = 60.0,
        max_turns: int = 8,
        tool_parser: str = "auto",
        max_calls_per_turn: int = 8,
        max_result_chars: int = 8000,
        render_mode: str | None = None,
    ):
        super().__init__(
            max_turns=max_turns,
            tool_parser=tool_parser,
            max_calls_per_turn=max_calls_per_turn,
            max_result_chars=max_result_chars,
            render_mode=render_mode,
        )
        for name, value in (("call_timeout_s", call_timeout_s), ("connect_timeout_s", connect_timeout_s)):
            if not value > 0:
                raise ValueError(f"{name}={value}; it must be > 0 seconds")
        self.tasks: list[MCPTask] = load_tasks(tasks if tasks is not None else BUNDLED_TASKS)
        for task in self.tasks:
            if isinstance(task.server, StdioServer) and resolve_command(task.server) is None:
                raise ValueError(
                    f"task {task.id}: the server command {task.server.command!r} is neither on PATH nor a "
                    f"file in {task.server.cwd}; install it or give its full path"
                )
        too_long = [t.id for t in self.tasks if len(t.expert.turns) + 1 > max_turns]
        if too_long:
            raise ValueError(
                f"max_turns={max_turns}, but the experts of {', '.join(too_long)} need more replies; "
                "raise max_turns"
            )
        self.call_timeout_s = call_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.system_prompt = SYSTEM_PROMPT
        self._loop: DrivenLoop | None = None
        self._connection: MCPConnection | None = None
        self._open: list[MCPConnection] = []  # what the finalizer closes if the env is dropped
        self._finalizer: weakref.finalize | None = None
        self._expert_replies: list[str] = []
        self._expert_calls: list[list[tuple[str, dict[str, Any]]]] = []
        self._expert_step = 0

    # -- episode ---------------------------------------------------------------------------------
    @property
    def connection(self) -> MCPConnection | None:
        """The open session with the episode's server (None between episodes)."""
        return self._connection

    def _draw(self, options: dict[str, Any] | None) -> MCPTask:
        return draw_task(self.tasks, options, self.np_random, "MCPEnv")

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        task = self._draw(options)
        self._disconnect()
        self._task = task
        self._connection = self._connect(task)
        self.tools = [tool_declaration(tool) for tool in self._connection.tools]
        expert = task.expert
        self._expert_calls = [[(c.name, c.arguments) for c in turn] for turn in expert.turns]
        self._expert_replies = [
            self.format_calls([ToolCall(c.name, c.arguments, f"call_{i}") for i, c in enumerate(turn)])
            for turn in expert.turns
        ] + [expert.answer]
        self._expert_step = 0
        return task.prompt, {"task_id": task.id, "expert_action": self._expert_replies[0]}

    def _connect(self, task: MCPTask) -> MCPConnection:
        if self._loop is None or not self._loop.alive:
            self._loop = DrivenLoop()
            self._finalizer = weakref.finalize(self, _shut_down, self._loop, self._open)
        connection = MCPConnection.open(
            self._loop,
            task.server,
            call_timeout_s=self.call_timeout_s,
            connect_timeout_s=self.connect_timeout_s,
        )
        self._open[:] = [connection]
        return connection

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        try:
            observation, reward, terminated, truncated, info = super().step(action)
        except MCPServerError:
            self._disconnect(kill=True)
            raise
        if terminated or truncated:
            self._disconnect()
        return observation, reward, terminated, truncated, info

    def _step(self, action: str) -> StepOutcome:
        outcome = super()._step(action)
        if outcome.terminated:
            return outcome
        parsed = self.tool_parser.parse(action)
        made = [(call.name, call.arguments) for call in parsed.calls]
        if self._expert_step < len(self._expert_calls) and made == self._expert_calls[self._expert_step]:
            self._expert_step += 1
        outcome.info["expert_action"] = self._expert_replies[self._expert_step]
        return outcome

    # -- hooks -----------------------------------------------------------------------------------
    def _call_tool(self, call: ToolCall) -> str:
        return self._call(call.name, call.arguments)

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        if self._connection is None:
            raise MCPServerError("no open session with the MCP server; call reset() first")
        try:
            result = self._connection.call(name, arguments)
        except MCPError as exc:
            raise ToolError(exc.message) from exc
        text = result_text(result)
        if result.is_error:
            raise ToolError(text or f"tool {name} failed")
        return text

    def _finish(self, answer: str) -> StepOutcome:
        task = self.task
        failures = []
        if (why := task.check.judge_answer(answer)) is not None:
            failures.append(why)
        for check in task.check.state:
            try:
                got = self._call(check.tool, check.arguments)
            except ToolError as exc:
                got = f"Error: {exc}"
            if got.strip() != check.result.strip():
                args = ", ".join(f"{k}={v!r}" for k, v in check.arguments.items())
                failures.append(f"{check.tool}({args}) returns {got.strip()!r}, not {check.result.strip()!r}")
        ok = not failures
        return StepOutcome(
            observation="Correct." if ok else "Not solved: " + "; ".join(failures) + ".",
            reward=float(ok),
            terminated=True,
            success=ok,
            info={"check_failures": failures},
        )

    # -- shutdown --------------------------------------------------------------------------------
    def _disconnect(self, *, kill: bool = False) -> None:
        connection, self._connection = self._connection, None
        self._open.clear()
        if connection is not None:
            connection.close(kill=kill)

    def close(self) -> None:
        """End the episode's session and server, and close the env's event loop."""
        self._disconnect()
        if self._finalizer is not None:
            self._finalizer()
        self._loop = None
        super().close()


def _shut_down(loop: DrivenLoop, connections: list[MCPConnection]) -> None:
    """Close what an env left open (on `close`, or when the env is garbage collected or at exit)."""
    for connection in connections:
        connection.close()
    connections.clear()
    loop.stop()
