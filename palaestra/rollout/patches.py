"""UI-S1 Patch Module strategies: what enters the history at a patched step (docs/algorithms.md §4.3, Table 1).

When the policy's action a_t misses the expert's a*_t and a patch is left, the history gets the expert's
action instead, with a thought F(a_t, T_t) chosen by the strategy:

    thought-free patch         (a*_t, ∅)                              no cost (paper's final choice)
    off-policy thought patch   (a*_t, M0(I, a*_t, S_t))               an auxiliary model M0 writes it
    on-policy thought patch    (a*_t, M(I, a*_t, H_t, S_t))           the policy itself, +1 generation/step

A thought writer is prompted with the expert action as a hint (never shown in the history) and asked
for the reasoning that leads to it; the thought is the text inside its `<think>...</think>` (the whole
reply if it wrote none), as the reference code's `_sf` generator takes the `<think>` text. The patched
reply is `THOUGHT_TEMPLATE` filled with the thought and the expert action (just the action when the
thought is empty). The env still executes the expert action alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from palaestra.agents.base import GenerationRequest, Message, Policy, SamplingParams

__all__ = [
    "THOUGHT_HINT",
    "THOUGHT_TEMPLATE",
    "ModelThought",
    "PatchRequest",
    "ThoughtWriter",
    "extract_thought",
    "patched_reply",
]

THOUGHT_TEMPLATE = "<think>{thought}</think>\n{action}"
"""How a patched history entry joins the thought and the expert action."""

THOUGHT_HINT = (
    "Hint: the correct next action is\n{action}\n\nWrite the reasoning that leads to this action inside "
    "<think></think>, as if you had found it yourself, then give the action."
)


@dataclass(frozen=True)
class PatchRequest:
    """One patched step.

    Attributes:
        history: the chat the policy answered at this step (system prompt I, H_t, ending with S_t).
        expert: the expert's action a*_t.
        seed: sampling seed for the thought (None: unseeded).
    """

    history: Sequence[Message]
    expert: str
    seed: int | None = None


class ThoughtWriter(Protocol):
    """Writes the thought of each patched step (thought-free patching has none: pass no writer)."""

    async def thoughts(self, requests: Sequence[PatchRequest]) -> list[str]: ...


_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.S)


def extract_thought(text: str) -> str:
    """The `<think>` content of a reply (an unclosed tag runs to the end), else the whole reply, stripped."""
    found = _THINK.search(text)
    return (found.group(1) if found else text).strip()


def patched_reply(expert: str, thought: str, template: str = THOUGHT_TEMPLATE) -> str:
    """The history entry of a patched step: the expert action, with the thought when there is one."""
    return template.format(thought=thought, action=expert) if thought else expert


class ModelThought:
    """A model writes the thought for the expert action (off- or on-policy thought patch).

    Args:
        policy: M0, an auxiliary model (off-policy), or the policy being trained (on-policy).
        sampling: its sampling parameters (the request's seed replaces theirs).
        with_history: show H_t (on-policy, M(I, a*, H_t, S_t)) or only I and S_t (off-policy, M0(I, a*, S_t)).
        hint: the instruction carrying the expert action (`{action}` is replaced).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        sampling: SamplingParams | None = None,
        with_history: bool = True,
        hint: str = THOUGHT_HINT,
    ):
        if "{action}" not in hint:
            raise ValueError(f"hint={hint!r} must contain {{action}}, where the expert action goes")
        self.policy, self.with_history, self.hint = policy, with_history, hint
        self.sampling = sampling or SamplingParams(max_new_tokens=128)

    def messages(self, request: PatchRequest) -> list[Message]:
        """The thought prompt: (I, H_t, S_t) or (I, S_t), then the hint with the expert action."""
        history = list(request.history)
        if not history:
            raise ValueError("a patch request needs the history the policy answered (at least S_t)")
        head = [m for m in history[:1] if m["role"] == "system"]
        if self.with_history:
            context = history
        else:  # the current state only (text and any screenshot), as a user message
            context = [*head, {"role": "user", "content": history[-1]["content"]}]
        return [*context, {"role": "user", "content": self.hint.format(action=request.expert)}]

    async def thoughts(self, requests: Sequence[PatchRequest]) -> list[str]:
        prompts = [
            GenerationRequest(messages=tuple(self.messages(r)), sampling=replace(self.sampling, seed=r.seed))
            for r in requests
        ]
        return [extract_thought(g.text) for g in await self.policy.generate(prompts)]
