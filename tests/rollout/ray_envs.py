"""Envs for the Ray rollout tests, imported inside Ray worker processes (`worker_setup`)."""

from __future__ import annotations

import os
from pathlib import Path

import palaestra
from palaestra import StepOutcome, TextEnv


class CrashEnv(TextEnv):
    """Kills its own process on the first step, unless `marker` exists (it is created first), or
    always when `always`; otherwise a one-turn echo task."""

    def __init__(self, marker: str = "", always: bool = False):
        super().__init__(max_turns=1)
        self.marker, self.always = marker, always

    def _reset(self, options):
        return "Say anything.", {"task_id": "crash"}

    def _step(self, action: str) -> StepOutcome:
        if self.always or (self.marker and not Path(self.marker).exists()):
            if self.marker:
                Path(self.marker).touch()
            os._exit(1)
        return StepOutcome("done", reward=1.0, terminated=True, success=True)


class ExpertVowelEnv(TextEnv):
    """Three turns of "write vowels" with an expert ("[aaaa]"); a seeded share `crash_share` of the
    episodes raise on their 2nd step (an env crash inside the worker, which lives on)."""

    def __init__(self, crash_share: float = 0.0):
        super().__init__(max_turns=3)
        self.system_prompt, self.crash_share = "Write letters.", crash_share

    def _reset(self, options):
        self.crashes = bool(self.np_random.random() < self.crash_share)
        return "Write.", {"task_id": "vowels", "expert_action": "[aaaa]"}

    def _step(self, action: str) -> StepOutcome:
        if self._turn == 1 and self.crashes:
            raise RuntimeError("simulated env crash")
        letters = [c for c in action.lower() if c.isalpha()]
        won = sum(c in "aeiou" for c in letters) / max(1, len(letters)) > 0.6
        last = self._turn + 1 >= self.max_turns
        info = {"expert_action": "[aaaa]"}
        return StepOutcome("again", reward=float(won), terminated=last, success=won, info=info)


class SlowEnv(TextEnv):
    """A one-turn task whose step takes `delay` seconds (episodes stay in flight a while)."""

    def __init__(self, delay: float = 0.2):
        super().__init__(max_turns=1)
        self.delay = delay

    def _reset(self, options):
        return "Say anything.", {"task_id": "slow"}

    def _step(self, action: str) -> StepOutcome:
        import time

        time.sleep(self.delay)
        return StepOutcome("done", reward=1.0, terminated=True, success=True)


def register() -> None:
    from tests.vowel_env import VowelEnv

    palaestra.register_env("test/Crash-v0", CrashEnv, override=True)
    palaestra.register_env("test/Slow-v0", SlowEnv, override=True)
    palaestra.register_env("test/Vowel-v0", VowelEnv, override=True)
    palaestra.register_env("test/ExpertVowel-v0", ExpertVowelEnv, override=True)
