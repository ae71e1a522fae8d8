"""Summary statistics of a set of trajectories."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from palaestra.rollout.trajectory import Trajectory

__all__ = ["EvalSummary", "outcome_rates", "summarize", "wilson_interval"]


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


@dataclass(frozen=True)
class EvalSummary:
    """Aggregate metrics of an evaluation.

    Attributes:
        episodes: number of episodes.
        success_rate: fraction of episodes with `success`.
        success_ci95: Wilson 95% interval of the success rate.
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
