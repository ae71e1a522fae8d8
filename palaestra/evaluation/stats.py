"""Summary statistics of a set of trajectories."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from palaestra.rollout.trajectory import Trajectory

__all__ = [
    "BootstrapDifference",
    "EvalSummary",
    "bootstrap_ci",
    "bootstrap_difference",
    "macro_mean_ci",
    "outcome_rates",
    "summarize",
    "wilson_interval",
]

BOOTSTRAP_RESAMPLES = 2000
"""Resamples of every bootstrap here: the 2.5% / 97.5% percentiles move by < 0.5 points at this size."""


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Better than the normal approximation near 0 and 1 and for small n; (0, 1) when n == 0.
    """
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def _mean_stat(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """Macro mean of the samples' means (vectorized over resamples for scipy.stats.bootstrap)."""
    return np.mean([np.mean(x, axis=axis) for x in samples], axis=0)


def macro_mean_ci(
    samples: Sequence[Sequence[float]], *, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of the samples' means (each sample resampled on its own).

    With one sample this is the bootstrap interval of its mean; with one sample per env it is the
    interval of a macro-averaged score. Samples whose values are all equal contribute no spread.

    Args:
        samples: one or more non-empty sequences of values (e.g. per-episode success 0/1).
        confidence: the interval's coverage.
        seed: seeds the resampling, so the interval is reproducible.
    """
    arrays = [np.asarray(x, dtype=float) for x in samples]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError(f"got sample sizes {[a.size for a in arrays]}; every sample needs >= 1 value")
    point = float(_mean_stat(*arrays))
    varying = [a for a in arrays if np.ptp(a) > 0]
    if not varying:
        return (point, point)
    fixed = sum(float(a.mean()) for a in arrays if np.ptp(a) == 0)
    from scipy import stats as sps  # here: the trainers import this module, and need no scipy to train

    res = sps.bootstrap(
        tuple(varying),
        lambda *xs, axis=-1: (_mean_stat(*xs, axis=axis) * len(varying) + fixed) / len(arrays),
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def bootstrap_ci(values: Sequence[float], *, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` ((0, 1) when there are none)."""
    if len(values) == 0:
        return (0.0, 1.0)
    return macro_mean_ci([values], confidence=confidence, seed=seed)


@dataclass(frozen=True)
class BootstrapDifference:
    """A difference of (macro-averaged) means between two evaluations, with its uncertainty.

    Attributes:
        diff: score of A minus score of B.
        ci95: percentile bootstrap 95% interval of the difference.
        p_value: two-sided bootstrap p-value of "no difference": twice the smaller share of the
            bootstrap distribution on either side of 0 (add-one estimate, at most 1).
        paired: whether episodes were paired by task (same seeds and samples in both).
    """

    diff: float
    ci95: tuple[float, float]
    p_value: float
    paired: bool


def bootstrap_difference(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    *,
    paired: bool = False,
    seed: int = 0,
) -> BootstrapDifference:
    """Bootstrap the difference of macro-averaged means of A and B over the same envs.

    `a[k]` and `b[k]` are the per-episode values of env k. When `paired`, `a[k][i]` and `b[k][i]` are
    the same task, so the per-task differences are resampled (a paired test, tighter); otherwise each
    sample is resampled on its own. Resampling is independent across envs (stratified by env).
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"A has {len(a)} envs and B {len(b)}; both need the same, >= 1, envs")
    arrays_a = [np.asarray(x, dtype=float) for x in a]
    arrays_b = [np.asarray(x, dtype=float) for x in b]
    k = len(arrays_a)
    if paired:
        if any(x.shape != y.shape for x, y in zip(arrays_a, arrays_b, strict=True)):
            raise ValueError("paired=True needs the same number of episodes per env in A and B")
        data: tuple[np.ndarray, ...] = tuple(x - y for x, y in zip(arrays_a, arrays_b, strict=True))

        def statistic(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
            return _mean_stat(*xs, axis=axis)
    else:
        data = (*arrays_a, *arrays_b)

        def statistic(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
            return _mean_stat(*xs[:k], axis=axis) - _mean_stat(*xs[k:], axis=axis)

    diff = float(statistic(*data))
    if all(np.ptp(x) == 0 for x in data):  # no spread at all: the difference is exact
        return BootstrapDifference(diff, (diff, diff), 1.0 if diff == 0 else 0.0, paired)
    from scipy import stats as sps  # here: the trainers import this module, and need no scipy to train

    res = sps.bootstrap(
        data,
        statistic,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    dist = res.bootstrap_distribution
    n = dist.size  # add-one estimate: a p-value from n resamples is never reported as exactly 0
    p = min(1.0, 2 * (min(int(np.sum(dist <= 0)), int(np.sum(dist >= 0))) + 1) / (n + 1))
    ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    return BootstrapDifference(diff, ci, p, paired)


@dataclass(frozen=True)
class EvalSummary:
    """Aggregate metrics of an evaluation.

    Attributes:
        episodes: number of episodes.
        success_rate: fraction of episodes with `success`.
        success_ci95: Wilson 95% interval of the success rate.
        success_bootstrap_ci95: percentile bootstrap 95% interval of the success rate (seeded).
        reward_mean: mean episode return.
        reward_std: population std of episode returns.
        turns_mean: mean actions per episode.
        generated_tokens_mean: mean sampled tokens per episode (0 for text-only agents).
        generated_tokens_total: all sampled tokens.
        format_error_rate: fraction of actions the env could not parse.
        error_rate: fraction of episodes that failed (env crash, timeout, generation error).
        wall_time_s: wall-clock time of the rollout.
        episodes_per_s: throughput in episodes.
        tokens_per_s: throughput in sampled tokens.
        outcomes: for games, the fraction of episodes per final `info["outcome"]` ("win", "draw",
            "loss"); None when no episode reported an outcome.
    """

    episodes: int
    success_rate: float
    success_ci95: tuple[float, float]
    reward_mean: float
    reward_std: float
    turns_mean: float
    generated_tokens_mean: float
    generated_tokens_total: int
    format_error_rate: float
    error_rate: float
    wall_time_s: float
    episodes_per_s: float
    tokens_per_s: float
    outcomes: dict[str, float] | None = None
    success_bootstrap_ci95: tuple[float, float] = (0.0, 1.0)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def summarize(trajectories: Sequence[Trajectory], wall_time_s: float) -> EvalSummary:
    """Summarize trajectories of one evaluation."""
    n = len(trajectories)
    successes = sum(t.success for t in trajectories)
    rewards = [t.reward for t in trajectories]
    mean = sum(rewards) / n if n else 0.0
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / n) if n else 0.0
    actions = sum(t.num_turns for t in trajectories)
    tokens = sum(t.num_generated_tokens for t in trajectories)
    wall = max(wall_time_s, 1e-9)
    return EvalSummary(
        episodes=n,
        success_rate=successes / n if n else 0.0,
        success_ci95=wilson_interval(successes, n),
        reward_mean=mean,
        reward_std=std,
        turns_mean=actions / n if n else 0.0,
        generated_tokens_mean=tokens / n if n else 0.0,
        generated_tokens_total=tokens,
        format_error_rate=sum(t.num_format_errors for t in trajectories) / actions if actions else 0.0,
        error_rate=sum(t.error is not None for t in trajectories) / n if n else 0.0,
        wall_time_s=wall_time_s,
        episodes_per_s=n / wall,
        tokens_per_s=tokens / wall,
        outcomes=outcome_rates(trajectories),
        success_bootstrap_ci95=bootstrap_ci([float(t.success) for t in trajectories]),
    )


def outcome_rates(trajectories: Sequence[Trajectory]) -> dict[str, float] | None:
    """Win / draw / loss rates from each episode's last `info["outcome"]` (games); None if none has one.

    Episodes without an outcome (failed or cut short) count as "unfinished"."""
    found = [
        t.turns[-1].info.get("outcome") if t.turns else ("win" if t.success else None)  # won before moving
        for t in trajectories
    ]
    if not any(found):
        return None
    n = len(trajectories)
    rates = {k: sum(o == k for o in found) / n for k in ("win", "draw", "loss")}
    rates["unfinished"] = sum(o is None for o in found) / n
    return rates
