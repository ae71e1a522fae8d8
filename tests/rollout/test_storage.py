"""Parquet trajectories: lossless round trip, atomic writes, loadable by `datasets`."""

from __future__ import annotations

import pytest

from palaestra.io import atomic_write_text
from palaestra.rollout import Trajectory, Turn, load_trajectories, save_trajectories


def _trajectory(i: int) -> Trajectory:
    return Trajectory(
        env_id="palaestra/Math-Arith-v0",
        seed=i,
        group_index=i // 2,
        sample_index=i % 2,
        task_id=f"task-{i}",
        agent="hf:tiny-random",
        messages=[
            {"role": "system", "content": "Solve."},
            {"role": "user", "content": "1 + é = ?"},
            {"role": "assistant", "content": "\\boxed{2}"},
        ],
        turns=[
            Turn(
                "\\boxed{2}",
                "Correct.",
                1.0,
                True,
                False,
                {"success": True, "format_error": None, "x": [1, 2]},
                "stop",
                (5, 9),
            )
        ],
        token_ids=list(range(10)),
        loss_mask=[0] * 5 + [1] * 4 + [0],
        logprobs=[0.0] * 5 + [-0.25, -0.5, -1.0, -2.0] + [0.0],
        prompt_length=5,
        success=True,
        terminated=True,
        error=None if i else "boom",
        env_kwargs={"difficulty": "easy"},
    )


def test_round_trip_is_lossless(tmp_path):
    trajs = [_trajectory(i) for i in range(4)]
    path = save_trajectories(trajs, tmp_path / "run" / "trajectories.parquet")
    loaded = load_trajectories(path)
    assert loaded == trajs
    assert loaded[0].reward == 1.0 and loaded[0].num_generated_tokens == 4


def test_datasets_can_load_the_file(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = save_trajectories([_trajectory(i) for i in range(3)], tmp_path / "t.parquet")
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert len(ds) == 3
    assert ds[1]["messages"][2] == {"role": "assistant", "content": "\\boxed{2}"}
    assert ds[1]["loss_mask"][5] == 1 and ds[0]["error"] == "boom"


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    atomic_write_text(path, "old")

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", explode)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"], "no temp file left behind"
