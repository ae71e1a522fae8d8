"""Held-out evaluation during training: the `envs.eval` entries, their metrics and where results are kept."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from palaestra.agents.base import SamplingParams
from palaestra.envs.registration import split_module
from palaestra.evaluation.evaluate import EvalResult, evaluate_async, write_results
from palaestra.rollout.runner import RolloutConfig

if TYPE_CHECKING:
    from palaestra.agents.base import Policy
    from palaestra.config import TrainConfig

__all__ = ["evaluate_held_out", "save_held_out"]


def _env_key(env_id: str) -> str:
    """The metric key of an env: its name without module and namespace ("m:ns/Name-v0" -> "Name-v0")."""
    return split_module(env_id)[1].split("/")[-1]


def evaluate_held_out(policy: Policy, cfg: TrainConfig) -> tuple[dict[str, float], list[EvalResult]]:
    """Evaluate `policy` on each `cfg.envs.eval` entry; metrics are `eval/<env>/<name>`."""
    sampling = SamplingParams(
        max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens,
        temperature=cfg.eval.temperature,
        seed=cfg.run.seed,
    )
    config = RolloutConfig(
        max_turns=cfg.rollout.max_turns,
        max_context_tokens=cfg.rollout.max_context_tokens,
        max_concurrency=cfg.agent.max_batch_size,
        sampling=sampling,
    )

    async def run_all() -> list[EvalResult]:
        return [
            await evaluate_async(
                policy,
                e.id,
                episodes=e.episodes,
                seed=e.seed,
                env_kwargs=e.kwargs,
                config=replace(config, group_size=e.samples),
                server=e.server,
                reward=e.reward.model_dump() if e.reward else None,
            )
            for e in cfg.envs.eval
        ]

    results = asyncio.run(run_all())
    metrics: dict[str, float] = {}
    for e, res in zip(cfg.envs.eval, results, strict=True):
        key = _env_key(e.id)
        metrics[f"eval/{key}/success"] = res.summary.success_rate
        metrics[f"eval/{key}/reward"] = res.summary.reward_mean
        metrics[f"eval/{key}/format_error_rate"] = res.summary.format_error_rate
    return metrics, results


def save_held_out(results: Sequence[EvalResult], cfg: TrainConfig, folder: Path) -> None:
    """Keep results and trajectories in `folder/<env>/` (RUN/eval/<stage>/, for the report and viewer)."""
    for e, result in zip(cfg.envs.eval, results, strict=True):
        write_results(result, folder / _env_key(e.id))
