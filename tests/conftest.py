"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random model over it."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from palaestra.agents.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_model(smollm2_tokenizer):
    from palaestra.agents.models import build_tiny_model

    return build_tiny_model(smollm2_tokenizer, seed=0)


@pytest.fixture
def tiny_policy(tiny_model, smollm2_tokenizer):
    from palaestra.agents.hf import HFPolicy

    policy = HFPolicy(tiny_model, smollm2_tokenizer, name="hf:tiny-random", max_batch_size=16)
    yield policy
    asyncio.run(policy.close())


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory):
    """The README's main job, shortened and run once per session through the CLI: configs/quickstart.yaml,
    2 GRPO steps of SmolLM2, evaluated before and after on 2 held-out envs. Returns (run folder, CLI output).
    """
    from typer.testing import CliRunner

    from palaestra.cli import app

    out = tmp_path_factory.mktemp("runs")
    overrides = [
        f"run.output_dir={out}",
        "run.steps=2",
        "rollout.tasks_per_step=2",
        "rollout.group_size=2",
        "rollout.max_new_tokens=16",
        "envs.eval=[{id: palaestra/Math-ArithEasy-v0, kwargs: {split: test}, episodes: 4},"
        " {id: palaestra/Math-ArithRetry-v0, kwargs: {split: test}, episodes: 3}]",
        "logging.progress=false",
        "logging.tensorboard=false",
    ]
    result = CliRunner().invoke(app, ["train", "configs/quickstart.yaml", *overrides], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return out / "quickstart", result.output
