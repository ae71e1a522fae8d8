"""Tool calls in a model's reply: the call type, the pluggable parsers and the canonical text form.

A tool env's action is the assistant's reply as text (the env contract stays `gymnasium.Env[str, str]`,
so served envs and other trainers see the same action). The reply carries its tool calls in the
model's native format, and a `ToolCallParser` reads them:

    hermes   <tool_call>{"name": "search", "arguments": {"query": "..."}}</tool_call>   (Hermes, Qwen)
    json     a reply that is only a JSON object {"name", "arguments"} (or a list of them), optionally
             in a ```json fence; other JSON (`[1, 2]`, `{"answer": 5}`) is a plain reply, and a call
             object after prose is a format error (a call must be the whole reply)
    auto     hermes when the reply holds a <tool_call> tag, else json when it is a JSON call, else none

Parsers never raise: a reply they cannot read gives `ParsedReply.error`, which the env turns into a
format error the agent sees. Backends that return structured calls (an OpenAI-compatible server's
`tool_calls`) are turned into the hermes text form with `format_tool_calls`, so every env reads one
format whatever the backend. `register_tool_parser` adds a format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "TOOL_PARSERS",
    "AutoParser",
    "HermesParser",
    "JsonParser",
    "ParsedReply",
    "ToolCall",
    "ToolCallParser",
    "format_tool_calls",
    "get_tool_parser",
    "register_tool_parser",
]


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool.

    Attributes:
        name: the tool's name.
        arguments: its arguments (a JSON object).
        id: the call's id, which its result message quotes (`tool_call_id`); parsers number calls
            `call_<turn-local index>` when the model gives none.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def openai(self) -> dict[str, Any]:
        """The call as an OpenAI chat message's `tool_calls` entry (arguments as a JSON string)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its text and its tool calls.

    Attributes:
        content: the reply's text outside the tool calls (stripped).
        calls: the calls in order (empty: the reply calls no tool, e.g. a final answer).
        error: why the calls could not be read (then `calls` holds the ones that could); None if fine.
    """

    content: str
    calls: tuple[ToolCall, ...] = ()
    error: str | None = None


class ToolCallParser(Protocol):
    """Reads the tool calls of one reply format; never raises."""

    name: str

    def parse(self, text: str) -> ParsedReply: ...

    def format(self, content: str, calls: Sequence[ToolCall]) -> str:
        """The reply text this format gives for `content` followed by `calls` (what experts send)."""
        ...


def _call_from_object(obj: Any, index: int) -> ToolCall | str:
    """A `ToolCall` from a decoded JSON value, or why it is not one."""
    if not isinstance(obj, dict):
        return f"a tool call must be a JSON object, got {type(obj).__name__}"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return 'a tool call needs a "name" (a string)'
    arguments = obj.get("arguments", obj.get("parameters"))
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):  # some models send the arguments JSON-encoded, as OpenAI does
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return f"the arguments of {name} are not valid JSON ({exc.msg})"
    if not isinstance(arguments, dict):
        return f'the "arguments" of {name} must be a JSON object, got {type(arguments).__name__}'
    call_id = obj.get("id")
    return ToolCall(name, arguments, call_id if isinstance(call_id, str) and call_id else f"call_{index}")


def _names_a_call(obj: Any) -> bool:
    """Whether decoded JSON is meant as calls: an object with a "name", or a list of only such objects."""
    items = obj if isinstance(obj, list) and obj else [obj]
    return all(isinstance(item, dict) and "name" in item for item in items)


def _call_object(call: ToolCall) -> dict[str, Any]:
    """A call as the JSON object replies carry (its id only when it has one: a server's call id must
    survive the round trip through text, so its result quotes it)."""
    return {"name": call.name, "arguments": call.arguments, **({"id": call.id} if call.id else {})}


def _decode(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"


class HermesParser:
    """`<tool_call>{json}</tool_call>` blocks (Hermes 2 Pro, Qwen 2.5/3, many fine-tunes)."""

    name = "hermes"
    _BLOCK = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)

    def parse(self, text: str) -> ParsedReply:
        calls: list[ToolCall] = []
        errors: list[str] = []
        for match in self._BLOCK.finditer(text):
            body, closed = match.group(1).strip(), bool(match.group(2))
            if not closed:
                errors.append("a <tool_call> tag is never closed with </tool_call>")
                continue
            obj, error = _decode(body)
            call = _call_from_object(obj, len(calls)) if error is None else error
            if isinstance(call, str):
                errors.append(f"tool call {len(calls) + len(errors) + 1}: {call}")
            else:
                calls.append(call)
        content = self._BLOCK.sub("", text).strip()
        return ParsedReply(content, tuple(calls), "; ".join(errors) or None)

    def format(self, content: str, calls: Sequence[ToolCall]) -> str:
        blocks = [
            f"<tool_call>\n{json.dumps(_call_object(c), ensure_ascii=False)}\n</tool_call>" for c in calls
        ]
        return "\n".join(([content] if content else []) + blocks)


class JsonParser:
    """A reply that is only a JSON call object, or a list of them (optionally in a ```json fence)."""

    name = "json"
    _FENCE = re.compile(r"^```(?:json)?\s*\n(.*?)\n?```$", re.DOTALL)
    _CALL_START = re.compile(r'\{\s*"name"\s*:')

    def parse(self, text: str) -> ParsedReply:
        stripped = text.strip()
        fenced = self._FENCE.match(stripped)
        body = fenced.group(1).strip() if fenced else stripped
        if not body.startswith(("{", "[")):
            if self._CALL_START.search(body):  # "Let me check. {"name": ...}": a call the model meant to make
                return ParsedReply("", (), "a JSON tool call must be the whole reply, with no text around it")
            return ParsedReply(stripped)  # prose: no call
        obj, error = _decode(body)
        if error is not None:
            if self._CALL_START.search(body):
                return ParsedReply("", (), f"the reply looks like a JSON tool call but is {error}")
            return ParsedReply(stripped)
        if not _names_a_call(obj):
            return ParsedReply(stripped)  # JSON that is not a call (a final answer may be JSON)
        objects = obj if isinstance(obj, list) else [obj]
        calls: list[ToolCall] = []
        for index, item in enumerate(objects):
            call = _call_from_object(item, index)
            if isinstance(call, str):
                return ParsedReply("", tuple(calls), f"tool call {index + 1}: {call}")
            calls.append(call)
        return ParsedReply("", tuple(calls))

    def format(self, content: str, calls: Sequence[ToolCall]) -> str:
        objects = [_call_object(c) for c in calls]
        if not objects:
            return content
        return json.dumps(objects[0] if len(objects) == 1 else objects, ensure_ascii=False)


class AutoParser:
    """Hermes tags when the reply has any, else a plain JSON call, else no call."""

    name = "auto"

    def __init__(self) -> None:
        self._hermes, self._json = HermesParser(), JsonParser()

    def parse(self, text: str) -> ParsedReply:
        if "<tool_call>" in text:
            return self._hermes.parse(text)
        return self._json.parse(text)

    def format(self, content: str, calls: Sequence[ToolCall]) -> str:
        return self._hermes.format(content, calls)


TOOL_PARSERS: dict[str, Callable[[], ToolCallParser]] = {
    "auto": AutoParser,
    "hermes": HermesParser,
    "json": JsonParser,
}
"""Tool-call formats by name; `register_tool_parser` adds one."""


def register_tool_parser(name: str, factory: Callable[[], ToolCallParser]) -> None:
    """Make a reply format available to every tool env as `tool_parser=name`."""
    TOOL_PARSERS[name] = factory


def get_tool_parser(name: str) -> ToolCallParser:
    """The parser registered as `name`.

    Raises:
        ValueError: no such parser (the message lists the known ones).
    """
    try:
        return TOOL_PARSERS[name]()
    except KeyError:
        raise ValueError(f"unknown tool_parser {name!r}; known: {sorted(TOOL_PARSERS)}") from None


def format_tool_calls(content: str, calls: Sequence[ToolCall], parser: str = "hermes") -> str:
    """The reply text that carries `content` and `calls` in the format `parser` reads."""
    return get_tool_parser(parser).format(content, calls)
