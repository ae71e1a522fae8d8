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


def test_algorithm_data_round_trips_and_old_files_load(tmp_path):
    import dataclasses

    import pyarrow as pa
    import pyarrow.parquet as pq

    from palaestra.rollout.storage import SCHEMA, _to_row
    from palaestra.rollout.trajectory import GuidedStep, Refinement, SemiOnlineStep

    data = [
        SemiOnlineStep(
            1, "[up]", False, True, True, True, 0.5, "go up", step_return=0.25, episode_return=1.0
        ),
        Refinement("The generated solution is incorrect."),
        GuidedStep(0, "[left]", "Try up.", with_critique=False),
        None,
    ]
    trajectories = [dataclasses.replace(_trajectory(i), algo=d) for i, d in enumerate(data)]
    path = save_trajectories(trajectories, tmp_path / "t.parquet")
    assert load_trajectories(path) == trajectories
    # a file written before the `algo_json` column
    old = pa.schema([f for f in SCHEMA if f.name != "algo_json"])
    rows = [{k: v for k, v in _to_row(t).items() if k != "algo_json"} for t in trajectories]
    pq.write_table(pa.Table.from_pylist(rows, schema=old), tmp_path / "old.parquet")
    assert [t.algo for t in load_trajectories(tmp_path / "old.parquet")] == [None] * 4


def test_missing_algorithm_data_is_an_error_not_a_default():
    from palaestra.rollout.trajectory import Refinement, SemiOnlineStep

    with pytest.raises(ValueError, match="has no SemiOnlineStep data"):
        _trajectory(0).algo_data(SemiOnlineStep)
    with pytest.raises(ValueError, match="has no SemiOnlineStep data"):
        Trajectory("x", 0, algo=Refinement("c")).algo_data(SemiOnlineStep)
    with pytest.raises(ValueError, match="no step_return/episode_return"):
        SemiOnlineStep(0, "[up]", True, True, True, False, 1.0).returns()


def test_token_versions_round_trip_and_old_files_load(tmp_path):
    import dataclasses

    import pyarrow as pa
    import pyarrow.parquet as pq

    from palaestra.rollout.storage import SCHEMA, _to_row

    versions = [-1] * 5 + [3, 3, 4, 4] + [-1]  # a reply that spans a weight update
    trajectories = [dataclasses.replace(_trajectory(i), token_versions=list(versions)) for i in range(2)]
    path = save_trajectories(trajectories, tmp_path / "t.parquet")
    loaded = load_trajectories(path)
    assert loaded == trajectories
    assert (loaded[0].min_version, loaded[0].max_version) == (3, 4)
    # a file written before the `token_versions` column: nothing recorded
    old = pa.schema([f for f in SCHEMA if f.name != "token_versions"])
    rows = [{k: v for k, v in _to_row(t).items() if k != "token_versions"} for t in trajectories]
    pq.write_table(pa.Table.from_pylist(rows, schema=old), tmp_path / "old.parquet")
    old_loaded = load_trajectories(tmp_path / "old.parquet")
    assert [t.token_versions for t in old_loaded] == [[], []]
    assert old_loaded[0].min_version is None
    old_loaded[0].check()
