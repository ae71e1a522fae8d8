"""Scripted policies: the env's own expert (oracle) and random baselines (random text; random legal moves).

Both are text policies (`tokenizer=None`). Given a tokenizer they also return token ids (the reply's
tokens plus the end-of-turn token), so expert demonstrations can become SFT data with exact tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from palaestra.agents.base import Generation, GenerationRequest

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["OraclePolicy", "RandomLegalPolicy", "RandomPolicy"]

_WORDS = (
    "the",
    "answer",
    "is",
    "maybe",
    "I",
    "think",
    "so",
    "yes",
    "no",
    "it",
    "equals",
    "about",
    "result",
    "then",
)


class _ScriptedPolicy:
    name = "scripted"

    def __init__(self, tokenizer: PreTrainedTokenizerBase | None = None):
        self._tokenizer = tokenizer

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase | None:
        return self._tokenizer

    def _generation(self, text: str) -> Generation:
        if self._tokenizer is None:
            return Generation(text=text)
        ids = list(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        return Generation(text=text, token_ids=(*ids, self._tokenizer.eos_token_id))

    async def close(self) -> None:
        return None


class OraclePolicy(_ScriptedPolicy):
    """Replies with the env's `info["expert_action"]` (an error generation where the env gives none)."""

    name = "scripted:oracle"

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for r in requests:
            action = r.info.get("expert_action")
            if action is None:
                out.append(
                    Generation(
                        text="", finish_reason="error", error="env gives no info['expert_action'] to imitate"
                    )
                )
            else:
                out.append(self._generation(str(action)))
        return out


class RandomPolicy(_ScriptedPolicy):
    """Short random text with a random small integer in it, reproducible from its seed and the request's.

    Args:
        seed: base seed.
        tokenizer: optional tokenizer to return token ids.
    """

    name = "scripted:random"

    def __init__(self, seed: int = 0, tokenizer: PreTrainedTokenizerBase | None = None):
        super().__init__(tokenizer)
        self.seed = seed
        self._calls = 0

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for r in requests:
            salt = r.sampling.seed if r.sampling.seed is not None else self._calls
            self._calls += 1
            rng = np.random.default_rng([self.seed, salt & 0xFFFFFFFF, len(r.messages)])
            words = list(rng.choice(_WORDS, size=int(rng.integers(2, 7))))
            words.insert(int(rng.integers(0, len(words) + 1)), str(int(rng.integers(-20, 101))))
            out.append(self._generation(" ".join(words) + "."))
        return out


class RandomLegalPolicy(RandomPolicy):
    """A uniformly random legal move where the env lists them (`info["legal_actions"]`, as games do),
    else random text like `RandomPolicy`: the "random player" baseline of games.

    Args:
        seed: base seed.
        tokenizer: optional tokenizer to return token ids.
    """

    name = "scripted:random-legal"

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for r in requests:
            legal = r.info.get("legal_actions") if r.info else None
            if not legal:
                out.extend(await super().generate([r]))
                continue
            salt = r.sampling.seed if r.sampling.seed is not None else self._calls
            self._calls += 1
            rng = np.random.default_rng([self.seed, salt & 0xFFFFFFFF, len(r.messages), 1])
            out.append(self._generation(str(legal[int(rng.integers(len(legal)))])))
        return out
