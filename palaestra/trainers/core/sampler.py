"""Drawing training tasks: which env (by weight) and which seed, reproducibly and resumably.

`TaskSampler` draws fresh seeds (the default); `TaskPoolSampler` cycles a fixed pool of seeds
(`rollout.task_pool`), for methods and experiments where tasks must recur.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from palaestra.rollout.runner import Task

__all__ = ["TaskPoolSampler", "TaskSampler", "WeightedEnv", "make_task_sampler"]


@dataclass(frozen=True)
class WeightedEnv:
    """A training env with its sampling weight and kwargs."""

    env_id: str
    weight: float = 1.0
    kwargs: dict[str, Any] | None = None
    server: str | None = None
    reward: dict[str, Any] | None = None


class TaskSampler:
    """Samples tasks from weighted envs; its whole state is (seed, tasks drawn), so resume is exact.

    Task seeds are drawn from [0, 2**31) with a generator derived from (seed, draw index), so the k-th
    task of a run does not depend on how the draws were split into steps.
    """

    def __init__(self, envs: Sequence[WeightedEnv], seed: int):
        if not envs:
            raise ValueError("TaskSampler needs at least one env")
        weights = np.asarray([e.weight for e in envs], dtype=np.float64)
        if (weights <= 0).any():
            raise ValueError(f"env weights must be > 0, got {weights.tolist()}")
        self.envs = list(envs)
        self.probs = weights / weights.sum()
        self.seed = seed
        self.drawn = 0

    def _draw(self, index: int) -> Task:
        rng = np.random.default_rng([self.seed, index])
        env = self.envs[int(rng.choice(len(self.envs), p=self.probs))]
        seed = int(rng.integers(0, 2**31 - 1))
        return Task(env.env_id, seed, dict(env.kwargs or {}), server=env.server, reward=env.reward)

    def sample(self, n: int) -> list[Task]:
        """The next `n` tasks."""
        tasks = [self._draw(self.drawn + i) for i in range(n)]
        self.drawn += n
        return tasks

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["seed"] != self.seed:
            raise ValueError(f"checkpoint sampler seed {state['seed']} != configured seed {self.seed}")
        self.drawn = int(state["drawn"])


class TaskPoolSampler:
    """Draws tasks from a fixed pool of (env, seed), one shuffled epoch after another (resumable).

    Args:
        envs: the training envs (weights are ignored: every pool task is seen once per epoch).
        seeds: the task seeds of the pool (the same for every env).
        seed: shuffling seed.
    """

    def __init__(self, envs: Sequence[WeightedEnv], seeds: Sequence[int], seed: int):
        self.pool = [
            Task(e.env_id, int(s), dict(e.kwargs or {}), server=e.server, reward=e.reward)
            for e in envs
            for s in seeds
        ]
        if not self.pool:
            raise ValueError("the task pool is empty (no env or no seed); check rollout.task_pool")
        self.seed, self.drawn = seed, 0

    def keep(self, tasks: Sequence[Task]) -> None:
        """Restrict the pool to `tasks` (task filtering); an empty choice keeps the pool unchanged."""
        if tasks:
            self.pool = list(tasks)

    def _epoch(self, epoch: int) -> list[int]:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.pool)).tolist()

    def sample(self, n: int) -> list[Task]:
        """The next `n` tasks."""
        size = len(self.pool)
        out = [self.pool[self._epoch(i // size)[i % size]] for i in range(self.drawn, self.drawn + n)]
        self.drawn += n
        return out

    def state_dict(self) -> dict[str, Any]:
        pool = [[t.env_id, t.seed, t.env_kwargs, t.server, t.reward] for t in self.pool]
        return {"seed": self.seed, "drawn": self.drawn, "pool": pool}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "pool" not in state:
            raise ValueError(
                "the checkpoint's tasks come from fresh seeds, not a pool; rollout.task_pool changed"
            )
        self.seed, self.drawn = int(state["seed"]), int(state["drawn"])
        self.pool = [
            Task(e, int(s), dict(kw), server=(rest or [None])[0], reward=rest[1] if len(rest) > 1 else None)
            for e, s, kw, *rest in state["pool"]
        ]


def make_task_sampler(
    envs: Sequence[WeightedEnv], *, seed: int, task_pool: int | None = None
) -> TaskSampler | TaskPoolSampler:
    """Fresh seeds (`task_pool=None`) or seeds 0..task_pool-1 of each env in shuffled epochs."""
    if task_pool is None:
        return TaskSampler(envs, seed=seed)
    return TaskPoolSampler(envs, range(task_pool), seed=seed)
