"""`ToolEnv`: the contract of an env whose agent acts through tools.

A tool env is a `TextEnv`: the action is the assistant's reply as text. It declares its tools as
JSON schemas (`self.tools`, see `palaestra.tools.schema`), and every step reads the reply's tool calls
with the env's parser (`tool_parser`, see `palaestra.tools.calls`):

    reply with calls     each call is checked against its schema and run by `_call_tool`; the results
                         come back as `tool` messages (info["tool_messages"], info["role"] == "tool"),
                         the observation is their text; reward 0, the episode goes on
    reply with no call   the final answer: `_finish(answer)` judges it (usually terminated)
    unreadable calls     a format error: no call runs and the agent is told the expected format
    unknown tool, bad    that call's result is the error (the agent sees it), `format_error` is set,
    arguments            the valid calls of the reply still run

`_call_tool` raises `ToolError` for failures the agent should see and recover from (a file not found,
a bad query); any other exception is the env's own failure (a crashed MCP server) and ends the
episode as failed, with the cause, in the rollout.

The rollout passes `self.tools` to the model's chat template, records the tool messages token-exact
with the loss mask off, and hands OpenAI-compatible servers the tools and structured calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.tools.calls import ToolCall, ToolCallParser, get_tool_parser
from palaestra.tools.schema import tool_name, validate_arguments

__all__ = ["ToolEnv", "ToolError"]


class ToolError(Exception):
    """A tool call failed in a way the agent sees as the call's result (and may recover from)."""


class ToolEnv(TextEnv):
    """Base class for tool-using envs (see the module docstring).

    Subclasses set `self.tools` (and `system_prompt`) in `__init__` or `_reset`, and implement:
        `_reset(options) -> (observation, info)`: the task, as for any `TextEnv`.
        `_call_tool(call) -> str`: run one validated call; raise `ToolError` for an error the agent sees.
        `_finish(answer) -> StepOutcome`: judge the final answer (a reply with no tool call).

    Args:
        max_turns: replies per episode (tool-calling ones included).
        tool_parser: the reply format of tool calls ("auto", "hermes", "json" or a registered one).
        max_calls_per_turn: calls beyond this many in one reply are refused (a format error).
        max_result_chars: a longer tool result is cut, with a note saying how much was dropped.
        render_mode: None or "ansi".
    """

    def __init__(
        self,
        *,
        max_turns: int = 8,
        tool_parser: str = "auto",
        max_calls_per_turn: int = 8,
        max_result_chars: int = 8000,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if max_calls_per_turn < 1:
            raise ValueError(f"max_calls_per_turn={max_calls_per_turn}; it must be >= 1")
        if max_result_chars < 1:
            raise ValueError(f"max_result_chars={max_result_chars}; it must be >= 1")
        self.tool_parser: ToolCallParser = get_tool_parser(tool_parser)
        self.max_calls_per_turn = max_calls_per_turn
        self.max_result_chars = max_result_chars
        self.tools: list[dict[str, Any]] = []

    # -- hooks -------------------------------------------------------------------------------------
    def _call_tool(self, call: ToolCall) -> str:
        raise NotImplementedError

    def _finish(self, answer: str) -> StepOutcome:
        raise NotImplementedError

    # -- helpers for subclasses --------------------------------------------------------------------
    def format_calls(self, calls: Sequence[ToolCall], content: str = "") -> str:
        """A reply that makes `calls` in this env's format (for `info["expert_action"]`), written as a
        model writes it: without call ids (the env numbers them), so demos teach the native format."""
        return self.tool_parser.format(content, [replace(call, id="") for call in calls])

    # -- the step ----------------------------------------------------------------------------------
    def _step(self, action: str) -> StepOutcome:
        parsed = self.tool_parser.parse(action)
        if parsed.error is not None:
            return StepOutcome(
                observation=f"Your tool call could not be read: {parsed.error}. Call a tool as "
                f"{self.format_calls([ToolCall('tool_name', {'argument': 'value'})])}",
                format_error=parsed.error,
                info={"role": "user"},
            )
        if not parsed.calls:
            return self._finish(parsed.content)
        if len(parsed.calls) > self.max_calls_per_turn:
            error = f"{len(parsed.calls)} tool calls in one reply; at most {self.max_calls_per_turn}"
            return StepOutcome(
                observation=f"Too many tool calls: {error}.", format_error=error, info={"role": "user"}
            )
        declared = {tool_name(tool): tool for tool in self.tools}
        messages: list[dict[str, Any]] = []
        errors: list[str] = []
        for call in parsed.calls:
            tool = declared.get(call.name)
            problem = (
                f"unknown tool {call.name!r}; the tools are {sorted(declared)}"
                if tool is None
                else validate_arguments(tool, call.arguments)
            )
            if problem is not None:
                errors.append(problem)
                content = f"Error: {problem}"
            else:
                try:
                    content = self._cut(self._call_tool(call))
                except ToolError as exc:
                    content = self._cut(_error_text(str(exc)))
            messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": content})
        return StepOutcome(
            observation=self._observation(messages),
            format_error="; ".join(errors) or None,
            info={"role": "tool", "tool_messages": messages},
        )

    def _cut(self, text: str) -> str:
        if len(text) <= self.max_result_chars:
            return text
        dropped = len(text) - self.max_result_chars
        return text[: self.max_result_chars] + f"\n[... {dropped} more characters not shown]"

    @staticmethod
    def _observation(messages: Sequence[dict[str, Any]]) -> str:
        """The tool results as one text (what gymnasium users and text-only viewers see)."""
        if len(messages) == 1:
            return str(messages[0]["content"])
        return "\n\n".join(f"[{m['name']}] {m['content']}" for m in messages)


def _error_text(message: str) -> str:
    """A tool error as the agent sees it: "Error: ..." once (an MCP server's errors carry their own)."""
    return message if message.startswith("Error") else f"Error: {message}"
