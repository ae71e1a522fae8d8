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


def register() -> None:
    from tests.vowel_env import VowelEnv

    palaestra.register_env("test/Crash-v0", CrashEnv, override=True)
    palaestra.register_env("test/Vowel-v0", VowelEnv, override=True)
