"""benchmarks/algorithms.py: the table and plot from per-seed results, and the run configs it builds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).parents[2] / "benchmarks" / "algorithms.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_algorithms", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_algorithms"] = module
    spec.loader.exec_module(module)
    return module


def _result(arm, seed, before, after):
    return {
        "comparison": "gigpo",
        "arm": arm,
        "seed": seed,
        "curve": [[0, before], [2, after]],
        "train_success": [0.5],
        "seconds": 10.0,
    }


def test_table_reports_mean_and_spread_over_seeds_and_plot_is_written(bench, tmp_path):
    results = [_result("grpo", s, 0.0, a) for s, a in enumerate([0.25, 0.5, 0.75])]
    results += [_result("gigpo", s, 0.0, 0.5) for s in range(3)]
    text = bench.table(results)
    assert "| gigpo | grpo | 3 | 0.000 ± 0.000 | 0.500 ± 0.250 | 0.500 ± 0.250 |" in text
    assert "| gigpo | gigpo | 3 |" in text and "arpo" not in text
    bench.plot(results, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_both_arms_share_everything_but_the_algorithm(bench, tmp_path):
    import argparse

    args = argparse.Namespace(
        out=tmp_path,
        steps=2,
        model="tiny-random",
        tasks_per_step=1,
        group_size=4,
        max_new_tokens=8,
        lr=1e-5,
        eval_episodes=2,
        eval_every=0,
        eval_temperature=0.0,
    )
    for name, spec in bench.COMPARISONS.items():
        configs = [bench._config(args, name, arm, seed=1) for arm in spec["arms"]]
        dumps = [c.model_dump(exclude={"algorithm", "run"}) for c in configs]
        assert dumps[0] == dumps[1], name
        assert configs[0].run.seed == configs[1].run.seed == 1
    arpo_base = bench._config(args, "arpo", "grpo", seed=0)
    assert (
        arpo_base.rollout.task_pool == 8 and arpo_base.algorithm.success_threshold > 1
    )  # replay never fires
