"""Results reach --out while an evaluation runs (a crash keeps the finished episodes), and a hung env
cannot hold the `palaestra eval` process after its episodes timed out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from palaestra.agents.base import Generation, GenerationRequest
from palaestra.evaluation import evaluate
from palaestra.rollout import RolloutConfig, load_trajectories

REPO = Path(__file__).resolve().parents[2]


class _Killed(BaseException):
    """Stands for the process being killed: nothing in the rollout may catch it."""


class OracleThatDies:
    """Answers with the expert action, and dies at its `die_at`-th request."""

    name = "oracle-that-dies"
    tokenizer = None

    def __init__(self, die_at: int) -> None:
        self.die_at, self.calls = die_at, 0

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.calls += len(requests)
        if self.calls >= self.die_at:
            raise _Killed
        return [Generation(text=str(r.info["expert_action"])) for r in requests]

    async def close(self) -> None:
        pass


def test_a_crash_keeps_the_chunks_that_finished(tmp_path):
    config = RolloutConfig(max_concurrency=1)  # one episode at a time: episodes 0-4 finish, the 6th dies
    with pytest.raises(_Killed):
        evaluate(
            OracleThatDies(die_at=6),
            "Math-Arith-v0",
            episodes=10,
            config=config,
            out_dir=tmp_path,
            chunk_size=2,
        )
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["complete"] is False and data["seeds"] == list(range(10))
    assert data["episodes"]["seed"] == [0, 1, 2, 3] and data["summary"]["episodes"] == 4
    assert all(data["episodes"]["success"])
    assert [t.seed for t in load_trajectories(tmp_path / "trajectories.parquet")] == [0, 1, 2, 3]


def test_the_final_write_marks_the_results_complete(tmp_path):
    result = evaluate(OracleThatDies(die_at=99), "Math-Arith-v0", episodes=5, out_dir=tmp_path, chunk_size=2)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["complete"] is True and data["episodes"]["seed"] == [0, 1, 2, 3, 4]
    assert result.complete and len(load_trajectories(tmp_path / "trajectories.parquet")) == 5


@pytest.mark.slow  # a fresh `palaestra` process: 4-10 s on a busy 2-core box
def test_eval_exits_although_a_step_never_returns(tmp_path):
    out = tmp_path / "hang"
    # the env module registers tests/Hang-v0 in the child, whose step spins forever
    code = "import tests.evaluation.hang_env; from palaestra.cli import main; main()"
    args = ["eval", "--env", "tests/Hang-v0", "--agent", "scripted:oracle", "--episodes", "1"]
    args += ["--step-timeout", "0.3", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - start < 30, "the process waited for the stuck step"
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "results.json").read_text())
    assert data["complete"] is True and data["episodes"]["failed"] == [True]
    assert "step_timeout_s=0.3" in proc.stdout + proc.stderr
