"""Drawing training tasks: which env (by weight) and which seed, reproducibly and resumably."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from palaestra.rollout.runner import Task

__all__ = ["TaskSampler", "WeightedEnv"]


@dataclass(frozen=True)
class WeightedEnv:
    """A training env with its sampling weight and kwargs."""

    env_id: str
    weight: float = 1.0
    kwargs: dict[str, Any] | None = None


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
        return Task(env.env_id, int(rng.integers(0, 2**31 - 1)), dict(env.kwargs or {}))

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
