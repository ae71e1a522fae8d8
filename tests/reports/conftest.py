"""A real (tiny) training run for the report and viewer tests: GRPO on a 3-turn env, evaluated before and after."""

from __future__ import annotations

import pytest

import palaestra
from palaestra.config import load_config
from palaestra.trainers import make_trainer
from tests.vowel_env import VowelEnv


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The folder of a finished 3-step GRPO run of a tiny random model (report written by the trainer)."""
    from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer

    palaestra.register_env("test/VowelChat-v0", VowelEnv, kwargs={"turns": 3}, max_turns=3, override=True)
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
