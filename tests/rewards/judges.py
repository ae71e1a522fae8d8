"""Scripted judges for the reward tests: policies that answer with set verdicts, fail or hang.

Each is also a `module:function` factory, so a rubric in a config can name it as its judge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from palaestra.agents.base import Generation, GenerationRequest


class ScriptedJudge:
    """Answers each request with `verdict(prompt)`; counts requests and keeps the prompts it saw."""

    name = "scripted:judge"
    tokenizer = None

    def __init__(self, verdict=lambda prompt: "Score: 7/10"):
        self.verdict = verdict
        self.prompts: list[str] = []

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for request in requests:
            prompt = str(request.messages[-1]["content"])
            self.prompts.append(prompt)
            out.append(Generation(text=self.verdict(prompt)))
        return out

    async def close(self) -> None:
        return None


class RaisingJudge(ScriptedJudge):
    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        raise ConnectionError("judge server refused the connection")


class HangingJudge(ScriptedJudge):
    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def judge_by_length() -> ScriptedJudge:
    """Scores a reply by its length in words (3+ words: 10/10), as JSON."""

    def verdict(prompt: str) -> str:
        reply = prompt.split("The reply to grade:\n", 1)[1].split("\n\nJudge how", 1)[0]
        return f'{{"score": {min(10, 10 * len(reply.split()) // 3)}}}'

    return ScriptedJudge(verdict)


def not_a_policy() -> object:
    return object()


def reply_length(ctx) -> float:
    """A python criterion: the reply's length in characters, over 10 (capped at 1)."""
    return min(1.0, len(ctx.reply) / 10)
