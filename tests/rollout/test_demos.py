"""Expert demonstrations through the public API and the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import palaestra
from palaestra import StepOutcome, TextEnv
from palaestra.cli import app
from palaestra.rollout.demos import collect_demos, write_demos
from palaestra.rollout.storage import load_trajectories


class _NoExpertEnv(TextEnv):
    def __init__(self):
        super().__init__(max_turns=1)

    def _reset(self, options):
        return "Say anything.", {"task_id": "x"}

    def _step(self, action):
        return StepOutcome("ok", terminated=True)


def test_demos_replay_the_expert_and_round_trip(tmp_path):
    demos = collect_demos("palaestra/Math-ArithRetry-v0", episodes=5, seed=10)
    assert demos.attempted == 5 and demos.succeeded == 5 and demos.success_rate == 1.0
    path = write_demos(demos, tmp_path)
    loaded = load_trajectories(path)
    assert [t.seed for t in loaded] == list(range(10, 15))
    for trajectory in loaded:
        assert trajectory.success and trajectory.turns
        assert trajectory.messages[-1]["role"] == "assistant"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["kept"] == 5 and summary["env_id"] == "palaestra/Math-ArithRetry-v0"


def test_an_env_without_an_expert_is_refused():
    palaestra.register_env("tests/NoExpert-v0", _NoExpertEnv, override=True)
    with pytest.raises(ValueError, match="no scripted expert"):
        collect_demos("tests/NoExpert-v0", episodes=2)


def test_cli_writes_demos_and_rejects_unknown_ids(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app, ["demos", "--env", "palaestra/Math-Arith-v0", "--episodes", "3", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert len(load_trajectories(tmp_path / "demos.parquet")) == 3
    result = runner.invoke(app, ["demos", "--env", "palaestra/Math-Arithh-v0", "--episodes", "1"])
    assert result.exit_code == 2 and "Did you mean" in result.output
