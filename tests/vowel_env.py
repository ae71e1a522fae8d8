"""The trainer tests' env: reward = the share of vowels among the reply's letters.

Only a changed output distribution earns it, and it varies between samples, so every group has a
reward spread and gradients flow. `turns` > 1 repeats the request (a multi-turn episode).
"""

from __future__ import annotations

from palaestra import StepOutcome, TextEnv


class VowelEnv(TextEnv):
    """Reply with letters; the reward is the fraction of them that are vowels."""

    def __init__(self, turns: int = 1):
        super().__init__(max_turns=turns)
        self.system_prompt = "Write letters."

    def _reset(self, options):
        n = int(self.np_random.integers(0, 1000))
        return f"Task {n}: write.", {"task_id": str(n)}

    def _step(self, action: str) -> StepOutcome:
        letters = [c for c in action.lower() if c.isalpha()]
        reward = sum(c in "aeiou" for c in letters) / max(1, len(letters))
        last = self._turn + 1 >= self.max_turns
        return StepOutcome(
            "again" if not last else "done", reward=reward, terminated=last, success=reward > 0.5
        )
