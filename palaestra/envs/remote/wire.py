"""How `RemoteEnv` turns text into a server's actions and its observations into text.

* `PalaestraWire`: a `palaestra serve` server (its `TextAction` / `TextObservation`): nothing to map.
* `OpenEnvWire`: any other OpenEnv server. Its action schema (`GET /schema`) decides the mapping:
    - a tool-call env (MCP: `call_tool` actions): the env's tools (`list_tools`, asked once after
      reset) are declared as the client's `tools` (so the rollout hands them to the model natively)
      and listed raw in `info["tools"]`; the reply makes one tool call in any format the `auto` parser
      reads (`<tool_call>{"name", "arguments"}</tool_call>`, a bare JSON call; `"tool"` is accepted
      for `"name"`); the tool's result is the next observation, as a `tool` message;
    - a text env: the reply goes into the action's one string field (`action_field` names it when
      there are several), and the observation's text field (`observation_field`, else the only string
      field) is the next observation; an observation without one is shown as JSON.
  A reply that cannot be mapped (not JSON for a tool call, say) never reaches the server: the episode
  gets a format-error observation, like palaestra's own envs give.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from palaestra.tools.calls import ToolCall, get_tool_parser
from palaestra.tools.schema import function_tool

__all__ = ["Answer", "OpenEnvWire", "PalaestraWire", "Wire"]

_TEXT_FIELDS = ("text", "message", "observation", "output", "stdout", "prompt", "content", "response")


@dataclass
class Answer:
    """A server's answer to reset or step, as gymnasium values."""

    text: str
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    system_prompt: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_parser: str = ""


class Wire(ABC):
    """Maps one env's actions and observations (see the module docstring)."""

    @abstractmethod
    def reset_data(
        self, env_id: str, env_kwargs: dict[str, Any], seed: int | None, options: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The data of a reset call for `env_id` made with `env_kwargs`, seeded with `seed`."""

    @abstractmethod
    def action(self, text: str) -> dict[str, Any] | str:
        """The action payload, or a format error (str) when `text` cannot be one."""

    @abstractmethod
    def answer(self, payload: dict[str, Any]) -> Answer:
        """The answer in a server's `{"observation": ..., "reward": ..., "done": ...}`."""

    def after_reset(self, answer: Answer, call: Any) -> Answer:
        """A hook after reset; `call(action_dict)` steps the server (used to list tools)."""
        return answer


class PalaestraWire(Wire):
    """A palaestra server: text in, `TextObservation` out."""

    def reset_data(
        self, env_id: str, env_kwargs: dict[str, Any], seed: int | None, options: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {"seed": seed, "env_id": env_id, "env_kwargs": env_kwargs, "options": options}

    def action(self, text: str) -> dict[str, Any] | str:
        return {"text": text}

    def answer(self, payload: dict[str, Any]) -> Answer:
        obs = payload.get("observation", {})
        return Answer(
            text=obs.get("text", ""),
            reward=float(payload.get("reward") or 0.0),
            terminated=bool(obs.get("terminated", False)),
            truncated=bool(obs.get("truncated", False)),
            info=dict(obs.get("info", {})),
            system_prompt=obs.get("system_prompt", ""),
            tools=list(obs.get("tools") or []),
            tool_parser=str(obs.get("tool_parser") or ""),
        )


class OpenEnvWire(Wire):
    """Any other OpenEnv server, mapped by its action schema.

    Args:
        schema: the server's `GET /schema` answer.
        action_field: the action's field that receives the reply (default: its only string field).
        observation_field: the observation's field shown as text (default: its only string field).
        system_prompt: the system prompt of every episode (tool envs: the tool list is appended).

    Raises:
        ValueError: the schema has no field for the reply and no `action_field` names one.
    """

    def __init__(
        self,
        schema: dict[str, Any],
        *,
        action_field: str | None = None,
        observation_field: str | None = None,
        system_prompt: str = "",
    ):
        action = schema.get("action", {})
        props = {k: v for k, v in action.get("properties", {}).items() if k != "metadata"}
        self.tools_env = "tool_name" in props or action.get("title") in ("CallToolAction", "Action")
        self.observation_field = observation_field
        self.system_prompt = system_prompt
        self.tools: list[dict[str, Any]] = []
        self._call: ToolCall | None = None
        if self.tools_env:
            self.action_field = ""
            return
        strings = [k for k, v in props.items() if v.get("type") == "string"]
        if action_field is None and len(strings) != 1:
            raise ValueError(
                f"cannot tell which field of the action {action.get('title', '')} ({', '.join(props)}) gets "
                "the reply; name it with the env kwarg action_field"
            )
        self.action_field = action_field or strings[0]

    def reset_data(
        self, env_id: str, env_kwargs: dict[str, Any], seed: int | None, options: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {"seed": seed, **(options or {})}

    def action(self, text: str) -> dict[str, Any] | str:
        if not self.tools_env:
            return {self.action_field: text}
        parsed = get_tool_parser("auto").parse(_legacy_names(text))
        usage = 'reply with one tool call: <tool_call>{"name": "NAME", "arguments": {...}}</tool_call>'
        if parsed.error is not None:
            return f"{parsed.error}; {usage}"
        if len(parsed.calls) != 1:
            return f"{len(parsed.calls)} tool calls in the reply; {usage}"
        self._call = call = parsed.calls[0]
        return {"type": "call_tool", "tool_name": call.name, "arguments": call.arguments}

    def answer(self, payload: dict[str, Any]) -> Answer:
        obs = dict(payload.get("observation", {}))
        reward = float(payload.get("reward") or 0.0)
        done = bool(payload.get("done", False))
        info: dict[str, Any] = {"success": done and reward > 0, "format_error": None, "observation": obs}
        text = self._text(obs)
        if self.tools_env and "tool_name" in obs and self._call is not None:
            call, self._call = self._call, None
            info["role"] = "tool"
            info["tool_messages"] = [
                {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": text}
            ]
        return Answer(text, reward, done, False, info, self.system_prompt, self._declarations())

    def after_reset(self, answer: Answer, call: Any) -> Answer:
        if not self.tools_env:
            return answer
        if not self.tools:
            listed = call({"type": "list_tools"}).get("observation", {})
            self.tools = list(listed.get("tools", []))
        answer.info["tools"] = self.tools
        answer.tools = self._declarations()
        return answer

    def _declarations(self) -> list[dict[str, Any]]:
        """The server's MCP tools as function declarations (`palaestra.tools.schema`)."""
        schema = {"type": "object", "properties": {}}
        return [
            function_tool(t["name"], str(t.get("description") or ""), t.get("input_schema") or schema)
            for t in self.tools
        ]

    def _text(self, obs: dict[str, Any]) -> str:
        if self.tools_env and "tool_name" in obs:
            if obs.get("error"):
                return f"Error: {obs['error'].get('message', obs['error'])}"
            return _result_text(obs.get("result"))
        name = self.observation_field
        if name is None:
            strings = [k for k, v in obs.items() if isinstance(v, str)]
            preferred = [k for k in _TEXT_FIELDS if k in strings]
            name = strings[0] if len(strings) == 1 else (preferred[0] if preferred else None)
        if name is not None and isinstance(obs.get(name), str):
            return str(obs[name])
        return json.dumps(obs, sort_keys=True, default=str)


def _legacy_names(text: str) -> str:
    """Replies written for the first version of this wire name the tool as "tool": read it as "name"."""
    stripped = text.strip()
    if not stripped.startswith("{") or '"tool"' not in stripped:
        return text
    try:
        call = json.loads(stripped)
    except json.JSONDecodeError:
        return text
    if isinstance(call, dict) and "name" not in call and isinstance(call.get("tool"), str):
        call["name"] = call.pop("tool")
        return json.dumps(call)
    return text


def _result_text(result: Any) -> str:
    """A tool result as text: MCP's text contents, its data, or JSON."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        contents = result.get("content")
        if isinstance(contents, list) and contents:
            return "\n".join(str(c.get("text", c)) if isinstance(c, dict) else str(c) for c in contents)
        if result.get("data") is not None:
            return str(result["data"])
    return json.dumps(result, sort_keys=True, default=str)
