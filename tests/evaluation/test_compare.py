"""`palaestra compare`: leaderboards from suite and single-env results, with significance."""

from __future__ import annotations

import pytest
from rich.console import Console

from palaestra.agents.spec import make_policy
from palaestra.evaluation import evaluate, write_results
from palaestra.evaluation.compare import leaderboard, leaderboard_table, load_entries, per_env_table
from palaestra.evaluation.suite_run import run_suite
from palaestra.evaluation.suites import load_suite


@pytest.fixture(scope="module")
def suite_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("suite")
    (tmp / "s.yaml").write_text(
        "name: s\nenvs:\n  - {id: palaestra/Math-ArithEasy-v0, split: test, episodes: 30}\n"
        "  - {id: palaestra/Math-ArithRetry-v0, split: test, episodes: 20}\n"
    )
    policies = [make_policy("scripted:random", seed=0), make_policy("scripted:oracle")]
    run_suite(load_suite(tmp / "s.yaml"), policies, tmp / "out", chunk_size=16)
    return tmp / "out"


def _text(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_leaderboard_ranks_by_score_and_flags_significant_gaps(suite_results):
    board = leaderboard(load_entries([suite_results]))
    assert [r.entry.label for r in board.rows] == ["scripted:oracle", "scripted:random"]
    leader, last = board.rows
    assert leader.score == 1.0 and leader.vs_leader is None
    assert last.vs_leader.paired and last.vs_leader.diff < -0.8 and last.vs_leader.p_value < 0.01
    text = _text(leaderboard_table(board))
    assert "100.0% [100.0%, 100.0%]" in text and "*" in text and "paired by task" in text
    assert "Math-ArithRetry-v0" in _text(per_env_table(board))


def test_single_env_results_compare_unpaired_on_shared_envs_only(tmp_path, suite_results):
    result = evaluate(
        make_policy("scripted:oracle"), "Math-ArithEasy-v0", episodes=12, env_kwargs={"split": "test"}
    )
    write_results(result, tmp_path / "one")
    board = leaderboard(load_entries([tmp_path / "one" / "results.json", suite_results]))
    assert board.envs == ["Math-ArithEasy-v0"] and board.dropped_envs == ["Math-ArithRetry-v0"]
    labels = [r.entry.label for r in board.rows]
    assert labels[-1] == "scripted:random" and len(labels) == 3
    oracle_gap = next(r for r in board.rows[1:] if r.entry.label.startswith("scripted:oracle")).vs_leader
    assert oracle_gap.diff == 0.0 and not oracle_gap.paired  # 12 vs 30 episodes: not the same tasks


def test_compare_rejects_what_it_cannot_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results at"):
        load_entries([tmp_path])
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="not a palaestra results file"):
        load_entries([tmp_path])
    with pytest.raises(ValueError, match="at least one"):
        leaderboard([])
