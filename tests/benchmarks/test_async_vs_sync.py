"""benchmarks/async_vs_sync.py: the latency wrapper's distribution, time to target and the table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).parents[2] / "benchmarks" / "async_vs_sync.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_async_vs_sync", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_async_vs_sync"] = module
    spec.loader.exec_module(module)
    return module


def test_step_latency_is_log_normal_with_the_stated_median_and_p99(bench, monkeypatch):
    import palaestra

    waits = []
    monkeypatch.setattr(bench.time, "sleep", waits.append)
    env = bench.StepLatency(palaestra.make("palaestra/Math-ArithRetry-v0"))
    for seed in range(400):
        env.reset(seed=seed)
        for _ in range(5):
            _, _, terminated, truncated, _ = env.step("\\boxed{0}")
            if terminated or truncated:
                break
    assert np.median(waits) == pytest.approx(0.1, rel=0.15)
    assert np.quantile(waits, 0.99) == pytest.approx(2.0, rel=0.35)
    # seeded: the same task waits the same
    first = list(waits)
    waits.clear()
    env.reset(seed=0)
    env.step("\\boxed{0}")
    assert waits[0] == first[0]


def _run(env, mode, seed, tokens, seconds, curve=(), staleness=None):
    return {
        "env": env,
        "mode": mode,
        "seed": seed,
        "steps": 4,
        "seconds": seconds,
        "trained_tokens": tokens,
        "final_success": 0.25,
        "curve": list(curve),
        "step_seconds": [seconds / 2, seconds / 4, seconds / 4] if mode == "async" else [seconds / 3] * 3,
        "staleness": staleness or {},
        "dropped": 1.0 if mode == "async" else 0.0,
        "idle": 0.1,
    }


def test_time_to_target_and_the_table(bench):
    run = _run("retry", "async", 0, 100, 10.0, curve=[(2, 4.0, 0.25), (4, 9.0, 0.5)])
    assert bench.time_to_target(run, 0.5) == 9.0 and bench.time_to_target(run, 0.75) is None
    results = [
        _run("retry", "sync", 0, 1000, 10.0),
        _run("retry", "async", 0, 1500, 10.0, staleness={0: 6, 1: 2}),
        _run("retry", "sync", 1, 1000, 20.0),
        _run("retry", "async", 1, 1000, 10.0, staleness={0: 8, 1: 0}),
    ]
    text = bench.table(results, 0.5)
    assert "| retry | sync | 2 | 75 ± 35 |" in text
    # async/sync per seed: 1.5 and 2.0
    assert "| retry | async | 2 | 125 ± 35 | 0.400 ± 0.000 | 1.75 ± 0.35 |" in text
    assert "| 14, 2 | 2 |" in text and "latency" not in text
    # after the first step: async 2.5 s (seed 0) and 2.5 s (seed 1), sync 3.3 s and 6.7 s
    assert "| 2.5 ± 0.0 | 14, 2 |" in text and "| 5.0 ± 2.4 | - |" in text
