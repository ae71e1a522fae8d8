"""The viewer and report read `palaestra eval --out` folders: results.json at the folder's top."""

from __future__ import annotations

import pytest

from palaestra.agents.spec import make_policy
from palaestra.evaluation import evaluate
from palaestra.reports import build_viewer, load_run


def test_an_eval_out_folder_is_one_evaluation_named_after_it(tmp_path):
    out = tmp_path / "oracle-arith"
    evaluate(make_policy("scripted:oracle"), "Math-Arith-v0", episodes=3, out_dir=out)
    run = load_run(out)
    assert [e.label for e in run.evaluations] == ["oracle-arith"]
    env = run.evaluations[0].envs["Math-Arith-v0"]
    assert env.files == [out / "trajectories.parquet"] and len(env.trajectories()) == 3
    index = build_viewer(run)
    assert index == out / "viewer" / "index.html"
    assert len(list((out / "viewer" / "data" / "episodes").glob("*.js"))) == 3


def test_a_corrupt_results_file_is_named(tmp_path):
    (tmp_path / "results.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"results\.json is not valid JSON"):
        load_run(tmp_path)
