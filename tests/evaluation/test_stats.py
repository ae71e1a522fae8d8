"""Evaluation statistics."""

from __future__ import annotations

import pytest

from palaestra.evaluation import summarize, wilson_interval
from palaestra.rollout import Trajectory, Turn


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_summarize_counts_everything():
    def traj(success: bool, rewards: list[float], fmt: list[bool], tokens: int, error: str | None = None):
        turns = [
            Turn("a", "o", r, False, False, {"format_error": "bad" if f else None})
            for r, f in zip(rewards, fmt, strict=True)
        ]
        return Trajectory("e", 0, turns=turns, success=success, loss_mask=[1] * tokens, error=error)

    s = summarize(
        [traj(True, [0.0, 1.0], [True, False], 10), traj(False, [0.0], [False], 6, "crash")], wall_time_s=2.0
    )
    assert s.episodes == 2 and s.success_rate == 0.5
    assert s.reward_mean == 0.5 and s.reward_std == 0.5
    assert s.turns_mean == 1.5 and s.format_error_rate == pytest.approx(1 / 3)
    assert s.generated_tokens_total == 16 and s.tokens_per_s == 8.0 and s.episodes_per_s == 1.0
    assert s.error_rate == 0.5
