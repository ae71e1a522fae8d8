"""An env whose step never returns (an endless loop), registered as `tests/Hang-v0` on import.

`palaestra eval --step-timeout` must record its episodes as timed out and exit, not wait for the step.
"""

from __future__ import annotations

import palaestra
from palaestra import StepOutcome, TextEnv


class HangEnv(TextEnv):
    """One turn whose step spins forever (holding the GIL between switches, like a runaway parser)."""

    def __init__(self) -> None:
        super().__init__(max_turns=1)
        self.system_prompt = "Say anything."

    def _reset(self, options):
        return "Say anything.", {"task_id": "hang", "expert_action": "anything"}

    def _step(self, action: str) -> StepOutcome:
        while True:
            pass


palaestra.register_env("tests/Hang-v0", HangEnv, description="a step that never returns", override=True)
