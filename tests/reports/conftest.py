"""A real (tiny) training run for the report and viewer tests: GRPO on a 3-turn env, evaluated before and after."""

from __future__ import annotations

import pytest

import palaestra
from palaestra import StepOutcome, TextEnv
from palaestra.config import load_config
from palaestra.trainers import make_trainer


class VowelChatEnv(TextEnv):
    """Three turns; reward = share of vowels in the reply; format error on an empty reply."""

    def __init__(self):
        super().__init__(max_turns=3)
        self.system_prompt = "Write letters."

    def _reset(self, options):
        n = int(self.np_random.integers(0, 1000))
        return f"Task {n}: write.", {"task_id": str(n)}

    def _step(self, action: str) -> StepOutcome:
        letters = [c for c in action.lower() if c.isalpha()]
        reward = sum(c in "aeiou" for c in letters) / max(1, len(letters))
        last = self._turn + 1 >= self.max_turns
        return StepOutcome(
            "again" if not last else "done",
            reward=reward,
            terminated=last,
            success=reward > 0.25,
            format_error=None if letters else "no letters",
        )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The folder of a finished 3-step GRPO run of a tiny random model (report written by the trainer)."""
    from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer

    palaestra.register_env("test/VowelChat-v0", VowelChatEnv, max_turns=3, override=True)
    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(
        None,
        [],
        run={"name": "tiny", "output_dir": str(out), "steps": 3, "seed": 0},
        envs={"train": [{"id": "test/VowelChat-v0"}], "eval": [{"id": "test/VowelChat-v0", "episodes": 6}]},
        rollout={"tasks_per_step": 2, "group_size": 4, "max_new_tokens": 8},
        optimizer={"lr": 1e-2},
        logging={"tensorboard": False, "progress": False},
        checkpoint={"every": 0},
    )
    tok = build_tiny_tokenizer()
    make_trainer(cfg, model=build_tiny_model(tok, seed=0), tokenizer=tok).train()
    return out / "tiny"
