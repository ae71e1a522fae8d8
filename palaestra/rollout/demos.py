"""Expert demonstrations: episodes played by an env's scripted expert, saved as trajectories.

Any env that puts `info["expert_action"]` in its info (web tasks, games, math, code) can produce
demonstrations: the offline data that semi-online RL (UI-S1) conditions on and that SFT trains on. Each
demo is an ordinary `Trajectory` (the chat with the expert's replies, per-turn observations, rewards and
infos), written to `demos.parquet` with a `summary.json` beside it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palaestra.agents.scripted import OraclePolicy
from palaestra.envs.registration import resolve_id
from palaestra.io import atomic_write_json
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task
from palaestra.rollout.storage import save_trajectories
from palaestra.rollout.trajectory import Trajectory

__all__ = ["DemoSet", "collect_demos", "write_demos"]


@dataclass
class DemoSet:
    """Demonstrations of one env.

    Attributes:
        env_id: the env's full id.
        trajectories: the kept episodes (all of them, or only the successful ones).
        attempted: how many episodes the expert played.
        succeeded: how many of them it solved.
        errors: episodes that failed with an env error (crash, timeout), as messages.
    """

    env_id: str
    trajectories: list[Trajectory]
    attempted: int
    succeeded: int
    errors: list[str]

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.attempted if self.attempted else 0.0


def collect_demos(
    env_id: str,
    *,
    episodes: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    only_success: bool = True,
    max_concurrency: int = 8,
) -> DemoSet:
    """Play `episodes` tasks (seeds `seed`, `seed + 1`, ...) with the env's scripted expert.

    Raises:
        UnknownEnvError: unknown env id.
        ValueError: `episodes` < 1, or the env gives no `expert_action` (every episode failed for it).
    """
    if episodes < 1:
        raise ValueError(f"episodes={episodes}; it must be >= 1")
    full_id = resolve_id(env_id)
    kwargs = dict(env_kwargs or {})
    tasks = [Task(full_id, seed=seed + i, env_kwargs=kwargs) for i in range(episodes)]
    config = RolloutConfig(max_concurrency=max_concurrency)

    async def play() -> list[Trajectory]:
        runner = RolloutRunner(OraclePolicy(), config)
        try:
            return await runner.run(tasks)
        finally:
            runner.close()

    played = asyncio.run(play())
    errors = [t.error for t in played if t.error]
    if len(errors) == len(played) and all("expert_action" in e for e in errors):
        raise ValueError(
            f"{full_id} gives no info['expert_action']: it has no scripted expert to demonstrate"
        )
    solved = [t for t in played if t.success and not t.error]
    return DemoSet(full_id, solved if only_success else played, len(played), len(solved), errors)


def write_demos(demos: DemoSet, out: str | Path) -> Path:
    """Write `demos.parquet` and `summary.json` into the folder `out`; returns the parquet path."""
    out = Path(out)
    path = save_trajectories(demos.trajectories, out / "demos.parquet")
    atomic_write_json(
        out / "summary.json",
        {
            "env_id": demos.env_id,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "attempted": demos.attempted,
            "succeeded": demos.succeeded,
            "kept": len(demos.trajectories),
            "seeds": [t.seed for t in demos.trajectories],
            "mean_turns": sum(t.num_turns for t in demos.trajectories) / max(len(demos.trajectories), 1),
            "errors": demos.errors[:20],
        },
    )
    return path
