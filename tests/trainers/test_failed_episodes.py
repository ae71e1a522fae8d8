"""Semi-online and critique-guided training treat a failed episode as the plain GRPO path does: it is
counted in `rollout/env_errors`, and `rollout.max_env_error_fraction` stops the run. `rollout.ray` with
CGI's trained critic (which lives in the trainer's process) is rejected in one line."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest

import palaestra
from palaestra import StepOutcome, TextEnv
from palaestra.config import load_config
from palaestra.trainers import make_trainer
from palaestra.trainers.core.trainer import RunStopped

ENV = "test/CrashyVowel-v0"


class CrashyVowelEnv(TextEnv):
    """Three turns of "write vowels" (the expert's "[aaaa]" earns each step's reward); a seeded share
    `crash_share` of the episodes raise on their 2nd step."""

    crash_share: ClassVar[float] = 0.5
    crashed: ClassVar[list[int]] = []

    def __init__(self) -> None:
        super().__init__(max_turns=3)
        self.system_prompt = "Write letters."

    def _reset(self, options):
        self.crashes = bool(self.np_random.random() < self.crash_share)
        return "Write.", {"task_id": "vowels", "expert_action": "[aaaa]"}

    def _step(self, action: str) -> StepOutcome:
        if self._turn == 1 and self.crashes:
            CrashyVowelEnv.crashed.append(self._turn)
            raise RuntimeError("simulated env crash")
        letters = [c for c in action.lower() if c.isalpha()]
        won = sum(c in "aeiou" for c in letters) / max(1, len(letters)) > 0.6
        last = self._turn + 1 >= self.max_turns  # the expert's path has three steps too
        return StepOutcome(
            "again", reward=float(won), terminated=last, success=won, info={"expert_action": "[aaaa]"}
        )


@pytest.fixture(scope="module", autouse=True)
def _env():
    palaestra.register_env(ENV, CrashyVowelEnv, max_turns=3, override=True)


@pytest.fixture(scope="module")
def tiny_tok():
    from palaestra.agents.models import build_tiny_tokenizer

    return build_tiny_tokenizer()


def _trainer(tmp_path, tok, algorithm, **rollout):
    from palaestra.agents.models import build_tiny_model

    cfg = load_config(
        None,
        [],
        run={"name": "t", "output_dir": str(tmp_path), "steps": 1, "seed": 0},
        envs={"train": [{"id": ENV}], "eval": [{"id": ENV, "episodes": 1}]},
        rollout={"tasks_per_step": 4, "group_size": 2, "max_new_tokens": 8, **rollout},
        algorithm=algorithm,
        optimizer={"lr": 1e-2},
        eval={"before_training": False},
        logging={"tensorboard": False, "progress": False},
        checkpoint={"every": 0},
    )
    return make_trainer(cfg, model=build_tiny_model(tok, seed=0), tokenizer=tok)


ALGORITHMS = [
    {"name": "semi_online", "patch_threshold": None, "min_return_std": None, "sop_eval": False},
    {"name": "cgi", "keep": "all"},
]


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a["name"])
def test_failed_episodes_are_counted_and_the_step_goes_on(tmp_path, tiny_tok, algorithm, monkeypatch):
    monkeypatch.setattr(CrashyVowelEnv, "crashed", [])
    metrics = _trainer(tmp_path, tiny_tok, algorithm).train_step()
    assert metrics["rollout/env_errors"] == len(CrashyVowelEnv.crashed) > 0
    assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("loss/"))


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a["name"])
def test_max_env_error_fraction_stops_the_run(tmp_path, tiny_tok, algorithm, monkeypatch):
    monkeypatch.setattr(CrashyVowelEnv, "crash_share", 1.0)
    trainer = _trainer(tmp_path, tiny_tok, algorithm, max_env_error_fraction=0.5)
    with pytest.raises(RunStopped, match=r"8 of 8 episodes failed with an env error .*simulated env crash"):
        trainer.train_step()


def test_rollout_ray_with_the_trained_cgi_critic_is_rejected(tmp_path, tiny_tok):
    with pytest.raises(ValueError, match=r"rollout\.ray is not supported with algorithm\.critic=trained: "):
        _trainer(tmp_path, tiny_tok, {"name": "cgi", "critic": "trained"}, ray={"address": "local"})
