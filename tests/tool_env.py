"""A small tool env for tests of the tool-calling path: look up values in a key-value table, then answer.

`tests.tool_env:test/Lookup-v0`: the task asks for the sum of two keys' values; the tools are
`get(key)` and `keys()`. The expert calls `get` for both keys in one reply, then answers the sum.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from palaestra.envs.core import StepOutcome
from palaestra.envs.tools import ToolEnv, ToolError
from palaestra.tools import ToolCall, function_tool

TOOLS = [
    function_tool(
        "get",
        "The value stored under a key.",
        {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
    ),
    function_tool("keys", "Every key in the table."),
]


class LookupEnv(ToolEnv):
    def __init__(self, **kwargs: Any):
        super().__init__(**{"max_turns": 4, **kwargs})
        self.tools = TOOLS
        self.system_prompt = "Answer with a number only."

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        names = ["alpha", "beta", "gamma", "delta"]
        self.table = {name: int(self.rng.integers(1, 50)) for name in names}
        self.asked = [str(k) for k in self.rng.choice(names, size=2, replace=False)]
        self.answer = sum(self.table[k] for k in self.asked)
        calls = [ToolCall("get", {"key": k}, f"call_{i}") for i, k in enumerate(self.asked)]
        return (
            f"What is {self.asked[0]} + {self.asked[1]}?",
            {"task_id": "+".join(self.asked), "expert_action": self.format_calls(calls)},
        )

    def _call_tool(self, call: ToolCall) -> str:
        if call.name == "keys":
            return ", ".join(self.table)
        if call.arguments["key"] not in self.table:
            raise ToolError(f"no key {call.arguments['key']!r}")
        return str(self.table[call.arguments["key"]])

    def _finish(self, answer: str) -> StepOutcome:
        ok = answer.strip() == str(self.answer)
        return StepOutcome(
            observation="correct" if ok else "wrong", reward=float(ok), terminated=True, success=ok
        )

    def _step(self, action: str) -> StepOutcome:
        outcome = super()._step(action)
        outcome.info.setdefault("expert_action", str(self.answer))
        return outcome


gym.register(id="test/Lookup-v0", entry_point=LookupEnv, max_episode_steps=4)
