"""Evaluate a policy on an env: roll out episodes, summarize, write results.json + trajectories.

With an output folder, the results are written as the episodes finish: every `chunk_size` finished
episodes, `results.json` (marked `"complete": false`) and `trajectories.parquet` are rewritten
(atomically) with all of them, so a crash or a kill keeps the finished work; the final write marks it
complete.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from palaestra.agents.base import Policy
from palaestra.envs.registration import make, resolve_id
from palaestra.evaluation.stats import EvalSummary, summarize
from palaestra.io import atomic_write_json
from palaestra.rollout.progress import episode_progress
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task
from palaestra.rollout.storage import save_trajectories
from palaestra.rollout.trajectory import Trajectory

__all__ = [
    "RESULTS_SCHEMA_VERSION",
    "EvalResult",
    "episode_records",
    "evaluate",
    "evaluate_async",
    "summary_table",
    "write_results",
]

RESULTS_SCHEMA_VERSION = 1

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """One evaluation of one policy on one env.

    Attributes:
        env_id: the env's full id.
        agent: the policy's name.
        seeds: the reset seed of each task, in order.
        env_kwargs: kwargs the env was made with.
        config: the rollout settings.
        summary: aggregate metrics.
        trajectories: every episode.
        complete: False while the evaluation is still running (a partial result: `trajectories` holds
            the finished episodes only).
        server: the OpenEnv server the env ran on; None: in process.
    """

    env_id: str
    agent: str
    seeds: list[int]
    env_kwargs: dict[str, Any]
    config: RolloutConfig
    summary: EvalSummary
    trajectories: list[Trajectory] = field(repr=False, default_factory=list)
    complete: bool = True
    server: str | None = None

    def to_json(self) -> dict[str, Any]:
        from palaestra import __version__

        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "palaestra_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "complete": self.complete,
            "env_id": self.env_id,
            "agent": self.agent,
            "env_kwargs": self.env_kwargs,
            "server": self.server,
            "seeds": self.seeds,
            "rollout": dataclasses.asdict(self.config),
            "summary": self.summary.to_dict(),
            "episodes": episode_records(self.trajectories),
        }


def episode_records(trajectories: Sequence[Trajectory]) -> dict[str, list[Any]]:
    """Per-episode columns (seed, sample, success, reward, turns, tokens, format errors, failed), in order.

    Results keep them so two evaluations can be compared episode by episode (`palaestra compare`).
    """
    return {
        "seed": [t.seed for t in trajectories],
        "sample": [t.sample_index for t in trajectories],
        "success": [bool(t.success) for t in trajectories],
        "reward": [t.reward for t in trajectories],
        "turns": [t.num_turns for t in trajectories],
        "tokens": [t.num_generated_tokens for t in trajectories],
        "format_errors": [t.num_format_errors for t in trajectories],
        "failed": [t.error is not None for t in trajectories],
    }


class _ChunkWriter:
    """Writes the finished episodes of a running evaluation to `out` every `chunk_size` of them."""

    def __init__(self, out: Path, chunk_size: int, partial: Callable[[list[Trajectory]], EvalResult]):
        self.out, self.chunk_size, self.partial = out, chunk_size, partial
        self.done: list[Trajectory] = []
        self.failed = False

    def add(self, traj: Trajectory) -> None:
        self.done.append(traj)
        if len(self.done) % self.chunk_size or self.failed:
            return
        ordered = sorted(self.done, key=lambda t: (t.group_index, t.sample_index))
        try:
            write_results(self.partial(ordered), self.out)
        except OSError as exc:  # the evaluation goes on; the final write reports the problem
            self.failed = True
            logger.warning("cannot write partial results to %s: %s", self.out, exc)


async def evaluate_async(
    policy: Policy,
    env_id: str,
    *,
    episodes: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    config: RolloutConfig | None = None,
    progress: bool = False,
    out_dir: str | os.PathLike[str] | None = None,
    chunk_size: int = 32,
    server: str | None = None,
    reward: dict[str, Any] | None = None,
) -> EvalResult:
    """Async form of `evaluate`, for callers that already run an event loop."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes}; it must be >= 1")
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size}; it must be >= 1")
    config = config or RolloutConfig()
    env_kwargs = dict(env_kwargs or {})
    if server is None:
        env_id = resolve_id(env_id)
        make(env_id, **env_kwargs).close()  # fail fast on bad kwargs, before any episode runs
    else:
        from palaestra.envs.remote import check_remote_env  # openenv-core: only for remote envs

        check_remote_env(server, env_id, env_kwargs)
    seeds = [seed + i for i in range(episodes)]
    tasks = [Task(env_id, s, env_kwargs, server=server, reward=reward) for s in seeds]
    runner = RolloutRunner(policy, config)
    start = time.perf_counter()

    def result(trajectories: list[Trajectory], complete: bool) -> EvalResult:
        summary = summarize(trajectories, time.perf_counter() - start)
        return EvalResult(
            env_id, policy.name, seeds, env_kwargs, config, summary, trajectories, complete, server
        )

    writer = None
    if out_dir is not None:
        writer = _ChunkWriter(Path(out_dir), chunk_size, lambda done: result(done, complete=False))
    try:
        label = f"{policy.name} on {env_id}"
        with episode_progress(episodes * config.group_size, label, enabled=progress) as on_end:

            def on_episode_end(traj: Trajectory) -> None:
                on_end(traj)
                if writer is not None:
                    writer.add(traj)

            trajectories = await runner.run(tasks, on_episode_end=on_episode_end)
    finally:
        runner.close()
    final = result(trajectories, complete=True)
    if out_dir is not None:
        write_results(final, out_dir)
    return final


def evaluate(
    policy: Policy,
    env_id: str,
    *,
    episodes: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    config: RolloutConfig | None = None,
    progress: bool = False,
    out_dir: str | os.PathLike[str] | None = None,
    chunk_size: int = 32,
    server: str | None = None,
    reward: dict[str, Any] | None = None,
) -> EvalResult:
    """Run `episodes` episodes (seeds `seed`, `seed+1`, ...) of `policy` on `env_id`.

    Args:
        policy: the agent.
        env_id: registered env id (namespace optional for palaestra's own envs).
        episodes: number of tasks (each rolled out `config.group_size` times).
        seed: first reset seed.
        env_kwargs: kwargs for the env.
        config: rollout settings (sampling, turns, timeouts).
        progress: show a rich progress bar.
        out_dir: if set, write the results here (`write_results`) as episodes finish and at the end.
        chunk_size: with `out_dir`: rewrite the partial results every this many finished episodes.
        server: run the env on this OpenEnv server ("ws://host:port": `palaestra serve` or any
            OpenEnv server) instead of in process.
        reward: a reward rubric that scores each episode's end (`palaestra.rewards.RewardSpec` as a
            dict); None: the env's own reward.

    Returns:
        The result with its summary and trajectories.

    Raises:
        OSError: the final results could not be written to `out_dir`.
    """
    return asyncio.run(
        evaluate_async(
            policy,
            env_id,
            episodes=episodes,
            seed=seed,
            env_kwargs=env_kwargs,
            config=config,
            progress=progress,
            out_dir=out_dir,
            chunk_size=chunk_size,
            server=server,
            reward=reward,
        )
    )


def write_results(result: EvalResult, out_dir: str | os.PathLike[str]) -> Path:
    """Write `results.json` and `trajectories.parquet` into `out_dir` (atomically); returns the JSON path.

    The trajectories go first, so `results.json` never names episodes the parquet file lacks.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_trajectories(result.trajectories, out / "trajectories.parquet")
    atomic_write_json(out / "results.json", result.to_json())
    return out / "results.json"


def _outcome_rate(kind: str) -> Callable[[EvalSummary], str]:
    """The summary-table cell of one game outcome ("win", "draw", "loss")."""
    return lambda s: f"{s.outcomes[kind]:.1%}" if s.outcomes else "-"


def summary_table(results: Sequence[EvalResult], title: str = "Evaluation") -> Table:
    """A rich table with one column per result and one row per metric (fits narrow terminals)."""
    table = Table(title=title)
    table.add_column("metric")
    for r in results:
        table.add_column(f"{r.env_id}\n{r.agent}", justify="right", overflow="fold")
    rows: list[tuple[str, Callable[[EvalSummary], str]]] = [
        ("episodes", lambda s: str(s.episodes)),
        ("success", lambda s: f"{s.success_rate:.1%}"),
        ("success 95% CI", lambda s: f"[{s.success_ci95[0]:.1%}, {s.success_ci95[1]:.1%}]"),
        ("mean reward", lambda s: f"{s.reward_mean:.3f}"),
        ("mean turns", lambda s: f"{s.turns_mean:.2f}"),
        ("tokens / episode", lambda s: f"{s.generated_tokens_mean:.1f}"),
        ("format errors", lambda s: f"{s.format_error_rate:.1%}"),
        ("failed episodes", lambda s: f"{s.error_rate:.1%}"),
        ("episodes / s", lambda s: f"{s.episodes_per_s:.2f}"),
        ("tokens / s", lambda s: f"{s.tokens_per_s:.1f}"),
        ("wall time (s)", lambda s: f"{s.wall_time_s:.1f}"),
    ]
    if any(r.summary.outcomes for r in results):
        for kind in ("loss", "draw", "win"):  # inserted in reverse: shown as win, draw, loss
            rows.insert(3, (kind, _outcome_rate(kind)))
    for name, fmt in rows:
        table.add_row(name, *(fmt(r.summary) for r in results))
    return table
