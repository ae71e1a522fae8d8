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


def test_bootstrap_ci_matches_the_binomial_interval_and_is_reproducible():
    from palaestra.evaluation.stats import bootstrap_ci

    lo, hi = bootstrap_ci([1.0, 0.0] * 50)
    assert lo == pytest.approx(0.40, abs=0.025) and hi == pytest.approx(0.60, abs=0.025)
    assert bootstrap_ci([1.0, 0.0] * 50) == (lo, hi)
    assert bootstrap_ci([0.0] * 20) == (0.0, 0.0)  # no spread to resample
    assert bootstrap_ci([]) == (0.0, 1.0)


def test_macro_mean_ci_weighs_every_sample_the_same():
    from palaestra.evaluation.stats import macro_mean_ci

    lo, hi = macro_mean_ci([[1.0, 0.0] * 50, [1.0] * 10])  # env means 0.5 and 1.0 -> score 0.75
    assert lo < 0.75 < hi and hi - lo == pytest.approx(0.1, abs=0.03)
    with pytest.raises(ValueError, match="every sample needs"):
        macro_mean_ci([[1.0], []])


def test_bootstrap_difference_separates_real_gaps_from_noise():
    from palaestra.evaluation.stats import bootstrap_difference

    strong = [[1.0] * 70 + [0.0] * 30]
    weak = [[1.0] * 30 + [0.0] * 70]
    gap = bootstrap_difference(strong, weak)
    assert gap.diff == pytest.approx(0.4) and gap.p_value < 0.01 and gap.ci95[0] > 0.2
    same = bootstrap_difference([[1.0, 0.0] * 50], [[0.0, 1.0] * 50])
    assert same.diff == 0.0 and same.p_value > 0.5
    # paired by task: A solves exactly B's tasks plus 5 more -> a consistent gap the paired test sees
    b = [1.0] * 40 + [0.0] * 60
    a = [1.0] * 45 + [0.0] * 55
    paired = bootstrap_difference([a], [b], paired=True)
    unpaired = bootstrap_difference([a], [b])
    assert paired.paired and paired.p_value < 0.05 < unpaired.p_value
    with pytest.raises(ValueError, match="same number of episodes"):
        bootstrap_difference([[1.0]], [[1.0, 0.0]], paired=True)
