"""The learner's side of the asynchronous pipeline (`rollout.pipeline=async`, docs/training.md).

`AsyncPipeline` starts a `GroupProducer` (`rollout/producer.py`) over the run's rollout source, which
keeps `tasks_per_step` groups of episodes in flight on a thread of its own, and gives the learner
complete groups:

    take(n, version)      n groups fresh enough to train on at learner version V: a group whose oldest
                          token is more than K = `rollout.max_staleness` versions old is dropped and counted
    after each update     the source gets the new weights (`RolloutSource.sync_weights(..., version)`),
                          then `weights_sent()` lets the producer start what the new version allows

The producer plans its groups step by step from a copy of the trainer's task sampler, as the
synchronous trainer samples them (same tasks, same per-step sampling seed), so K = 0 reproduces the
synchronous run, and a resumed run (whose sampler the checkpoint restored) plans from the step it
resumes at; groups that were in flight or queued when the run stopped are not kept.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from palaestra.rollout.producer import Group, GroupProducer, PlannedStep
from palaestra.rollout.runner import RolloutConfig, Task
from palaestra.rollout.trajectory import Trajectory

if TYPE_CHECKING:
    from palaestra.config import RolloutSection
    from palaestra.trainers.core.rollout_source import RolloutSource
    from palaestra.trainers.core.sampler import TaskPoolSampler, TaskSampler

__all__ = ["AsyncPipeline", "staleness_metrics"]


class AsyncPipeline:
    """Groups from a producer thread, with staleness accounting (see the module docstring).

    Args:
        rollouts: the run's rollout source (its `run` plays a group; its `version` is the rollouts').
        sampler: the trainer's task sampler (copied: the producer samples on its own thread).
        rollout_config: the rollout config of a step (the trainer's, with the step's sampling seed).
        config: the `rollout` section (`tasks_per_step`, `max_staleness`, `stale_groups`, `queue_groups`).
        first_step: the step the run continues from (0, or a resumed step).
    """

    def __init__(
        self,
        rollouts: RolloutSource,
        sampler: TaskSampler | TaskPoolSampler,
        rollout_config: Callable[[int], RolloutConfig],
        config: RolloutSection,
        *,
        first_step: int = 0,
    ):
        self.max_staleness = config.max_staleness
        self.per_step = config.tasks_per_step
        self._taken: dict[int, int] = {}  # learner version -> groups taken at it (dropped ones aside)
        tasks = copy.deepcopy(sampler)
        per_step = config.tasks_per_step

        def plan(step: int) -> PlannedStep:
            return PlannedStep(tasks.sample(per_step), rollout_config(step))

        async def run(task: Task, rollout: RolloutConfig) -> list[Trajectory]:
            return await rollouts.run([task], rollout)

        self.producer = GroupProducer(
            run,
            plan,
            version=lambda: rollouts.version,
            groups_per_step=per_step,
            max_staleness=config.max_staleness,
            wait_for_learner=config.stale_groups == "wait",
            queue_groups=config.queue_groups,
            # wait: the start rule bounds the groups in flight to (K + 1) steps' worth; drop: one step's
            in_flight=per_step * (config.max_staleness + 1) if config.stale_groups == "wait" else per_step,
            first_step=first_step,
        )
        self.producer.start()
        self._wait_s = 0.0
        self._dropped = 0

    def take(self, n: int, version: int) -> list[Trajectory]:
        """The trajectories of `n` groups trainable at learner `version`, ordered as a synchronous step's.

        Groups whose oldest token is more than `max_staleness` versions older than `version` are dropped
        (counted in `step_metrics`); the kept ones are ordered by (planned step, task index) and numbered
        0..n-1 (`Trajectory.group_index`). Groups beyond `tasks_per_step` at one version (dynamic
        sampling's refills) are released to the producer first, so it may start them.
        """
        start = time.perf_counter()
        taken = self._taken.get(version, 0)
        beyond = max(0, taken + n - self.per_step) - max(0, taken - self.per_step)
        if beyond:
            self.producer.release(beyond)
        self._taken = {version: taken + n}
        kept: list[Group] = []
        while len(kept) < n:
            group = self.producer.take()
            oldest = group.min_version
            if oldest is not None and version - oldest > self.max_staleness:
                self._dropped += 1
                self.producer.release()
                continue
            kept.append(group)
        self._wait_s += time.perf_counter() - start
        kept.sort(key=lambda g: (g.step, g.index))
        trajectories: list[Trajectory] = []
        for i, group in enumerate(kept):
            for t in group.trajectories:
                t.group_index = i
                trajectories.append(t)
        return trajectories

    def weights_sent(self) -> None:
        """The source has the new weights (or has them queued): the producer re-checks what it may start."""
        self.producer.wake()

    def step_metrics(self) -> dict[str, float]:
        """Time waited for groups and groups dropped since the last call (then reset)."""
        metrics = {"async/wait_s": self._wait_s, "async/dropped_groups": float(self._dropped)}
        self._wait_s, self._dropped = 0.0, 0
        return metrics

    def close(self) -> None:
        """Stop the producer (episodes in flight are cancelled)."""
        self.producer.close()


def staleness_metrics(trajectories: list[Trajectory], version: int, max_staleness: int) -> dict[str, float]:
    """How old the trained tokens are at learner `version`.

    Returns:
        `async/staleness_mean` and `async/staleness_max` over sampled tokens (V - v(t)), and
        `async/staleness_groups_k`: the number of groups whose oldest token is k versions old, k = 0..K.
    """
    ages = [
        version - v
        for t in trajectories
        for v, m in zip(t.token_versions, t.loss_mask, strict=False)
        if m and v >= 0
    ]
    oldest: dict[int, int] = {}
    for t in trajectories:
        if t.min_version is not None:
            oldest[t.group_index] = min(oldest.get(t.group_index, t.min_version), t.min_version)
    metrics = {
        "async/staleness_mean": sum(ages) / len(ages) if ages else 0.0,
        "async/staleness_max": float(max(ages, default=0)),
    }
    for k in range(max_staleness + 1):
        metrics[f"async/staleness_groups_{k}"] = float(sum(version - v == k for v in oldest.values()))
    return metrics
