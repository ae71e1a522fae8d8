"""ARPO: GRPO with a per-task replay buffer of successful trajectories (docs/algorithms.md §3).

Paper: Lu, Zhong, Liu, Fu, Jia, "ARPO: End-to-End Policy Optimization for GUI Agents with Experience
Replay" (arXiv 2505.16282); reference code dvlab-research/ARPO (`apply_replay`, `replay_buffer.py`).

Objective: GRPO on whole episodes (Layout A), A_i = (R_i − mean_g R) / (std_g R + 1e-6), PPO-clip with
ε_low 0.2 / ε_high 0.3 and dual-clip c = 3, seq-mean-token-mean, no KL (`trainers/core` loss). The
addition is the sampling strategy (§3.4), per step and in this order:

    1. roll out N samples of each task;
    2. for every task group that is "all-fail" (std(s) < 0.05 and mean(s) < 0.2, s the success signal)
       and whose task has a buffered success, replace sample 0 by a random buffered success
       (uniform, with replacement); the group keeps N samples;
    3. add every fresh rollout with s > 0.1 to its task's FIFO buffer (capacity 8; oldest dropped).

The injected trajectory is trained as if on-policy: with `recompute_old_logprobs` (default) its old
logprobs are recomputed by the current model after injection, so ρ = 1 at the start of the update,
exactly as the code (§3.4: no staleness correction). With `recompute_old_logprobs: false` the stored
sampling logprobs are used as π_old, i.e. ratios against the policy that generated it.

Task selection (§3.3): replay only helps when tasks recur, so ARPO is meant to train over a fixed task
pool (`rollout.task_pool`: seeds 0..n−1 of each env, shuffled per epoch; the trainer core's sampler)
and can keep only "valuable" tasks, those the initial policy solves at least once in `filter_trials`
tries (`filter_tasks`).

Choices (§3.8, §15 item 5): the success signal is the env's `success` (ARPO's eval_result) or the
episode return (`replay_signal`); injection position slot 0 (code) or a random slot (`inject_at`); the
format-reward weight is the env's own reward. The buffer is saved in checkpoints and restored on resume.

Departures from `trainers/core`: `collect` (replay, pool filtering) and buffer state in checkpoints.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from palaestra.rollout.runner import Task
from palaestra.rollout.trajectory import Trajectory, Turn
from palaestra.trainers.core.sampler import TaskPoolSampler
from palaestra.trainers.core.tracking import mean_or_zero
from palaestra.trainers.grpo import GRPOConfig, GRPOTrainer
from palaestra.trainers.registry import register_algorithm

if TYPE_CHECKING:
    from palaestra.config import TrainConfig

__all__ = [
    "ARPOConfig",
    "ARPOTrainer",
    "ReplayBuffer",
    "apply_replay",
    "is_all_fail",
    "task_key",
]


class ARPOConfig(GRPOConfig):
    """ARPO options (paper/code defaults), on top of GRPO's loss options."""

    name: Literal["arpo"] = "arpo"  # type: ignore[assignment]
    clip_high: float = Field(0.3, gt=0, description="Upper clip (ARPO: 0.3).")
    dual_clip: float | None = Field(3.0, gt=1, description="Dual-clip bound (ARPO: 3.0).")
    aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = Field(
        "seq-mean-token-mean", description="ARPO in effect: one trajectory per micro-batch, token-mean."
    )
    buffer_capacity: int = Field(8, ge=1, description="Successful trajectories kept per task (FIFO).")
    success_threshold: float = Field(0.1, description="A rollout enters the buffer if its signal > this.")
    all_fail_std: float = Field(0.05, gt=0, description="All-fail group: signal std below this ...")
    all_fail_mean: float = Field(0.2, description="... and signal mean below this.")
    replay_signal: Literal["success", "reward"] = Field(
        "success", description="The success signal: env success (eval_result) or the episode return."
    )
    inject_at: Literal["first", "random"] = Field(
        "first", description="Which sample the replayed success replaces (code: the first)."
    )
    filter_tasks: bool = Field(False, description="Keep only pool tasks the initial policy solves once.")
    filter_trials: int = Field(4, ge=1, description="Tries per pool task for `filter_tasks`.")

    def async_unsupported(self) -> str | None:
        if self.filter_tasks:
            return "filter_tasks rolls out the task pool with the initial policy before the first step"
        return None


class ReplayBuffer:
    """Per-task FIFO buffers of successful trajectories (docs/algorithms.md §3.4, Appendix A).

    Args:
        capacity: trajectories kept per task.
        threshold: a trajectory is stored if its signal > threshold.
        seed: seed of the uniform draw of replayed trajectories.
    """

    def __init__(self, capacity: int = 8, threshold: float = 0.1, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"capacity={capacity}; the buffer must hold >= 1 trajectory per task")
        self.capacity, self.threshold = capacity, threshold
        self.buffers: dict[str, list[Trajectory]] = {}
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def add(self, key: str, trajectory: Trajectory, signal: float) -> bool:
        """Store `trajectory` under task `key` if `signal` > threshold; returns whether it was stored."""
        if signal <= self.threshold:
            return False
        buffer = self.buffers.setdefault(key, [])
        buffer.append(copy.deepcopy(trajectory))
        del buffer[: max(0, len(buffer) - self.capacity)]
        return True

    def sample(self, key: str) -> Trajectory | None:
        """A uniformly drawn stored success of task `key` (a copy), or None if there is none."""
        buffer = self.buffers.get(key)
        return copy.deepcopy(self._rng.choice(buffer)) if buffer else None

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable state (trajectories as dicts, and the draw RNG)."""
        version, internal, gauss = self._rng.getstate()
        return {
            "capacity": self.capacity,
            "threshold": self.threshold,
            "rng": [version, list(internal), gauss],
            "buffers": {k: [dataclasses.asdict(t) for t in b] for k, b in self.buffers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.capacity, self.threshold = int(state["capacity"]), float(state["threshold"])
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))
        self.buffers = {k: [_trajectory(d) for d in b] for k, b in state["buffers"].items()}


def _trajectory(data: dict[str, Any]) -> Trajectory:
    turns = [Turn(**{**u, "token_span": tuple(u["token_span"])}) for u in data["turns"]]
    return Trajectory(**{**data, "turns": turns})


def is_all_fail(signals: Sequence[float], *, max_std: float = 0.05, max_mean: float = 0.2) -> bool:
    """ARPO's all-negative group test: std < max_std and mean < max_mean (population std, as numpy)."""
    values = np.asarray(signals, dtype=float)
    return bool(values.size) and float(values.std()) < max_std and float(values.mean()) < max_mean


def task_key(trajectory: Trajectory) -> str:
    """The replay buffer's task key: env id and task seed (the group's shared reset seed)."""
    return f"{trajectory.env_id}#{trajectory.seed}"


def apply_replay(
    trajectories: list[Trajectory],
    buffer: ReplayBuffer,
    *,
    signal: Callable[[Trajectory], float],
    max_std: float = 0.05,
    max_mean: float = 0.2,
    inject_at: Literal["first", "random"] = "first",
    rng: np.random.Generator | None = None,
) -> tuple[list[Trajectory], int]:
    """ARPO's replay step (§3.4): inject buffered successes into all-fail groups, then buffer successes.

    Args:
        trajectories: one step's rollouts; groups are `group_index`, tasks `task_key`.
        buffer: the replay buffer (updated in place with the fresh successes, after injection).
        signal: a rollout's success signal (env success or return).
        max_std: all-fail test, std below this ...
        max_mean: ... and mean below this.
        inject_at: replace the group's first sample (code) or a random one.
        rng: generator for `inject_at="random"`.

    Returns:
        The trajectories with replayed ones in place, and how many groups got one.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(trajectories):
        groups.setdefault(t.group_index, []).append(i)
    out, injected = list(trajectories), 0
    for members in groups.values():
        if not is_all_fail([signal(trajectories[i]) for i in members], max_std=max_std, max_mean=max_mean):
            continue
        replay = buffer.sample(task_key(trajectories[members[0]]))
        if replay is None:
            continue
        slot = members[0] if inject_at == "first" else members[int(rng.integers(len(members)))]
        replay.group_index = trajectories[slot].group_index
        replay.sample_index = trajectories[slot].sample_index
        out[slot] = replay
        injected += 1
    for t in trajectories:  # fresh rollouts only, after injection
        buffer.add(task_key(t), t, signal(t))
    return out, injected


class ARPOTrainer(GRPOTrainer):
    """GRPO with success replay into all-fail groups (see the module docstring)."""

    def __init__(self, config: TrainConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        algo = self.algo
        self.buffer = ReplayBuffer(algo.buffer_capacity, algo.success_threshold, seed=config.run.seed)
        self._filtered = not algo.filter_tasks
        if algo.filter_tasks and config.rollout.task_pool is None:
            raise ValueError("algorithm.filter_tasks needs a fixed pool; set rollout.task_pool")

    @property
    def algo(self) -> ARPOConfig:
        """This run's ARPO options (`config.algorithm`)."""
        return ARPOConfig.of(self.config.algorithm)

    def signal(self, trajectory: Trajectory) -> float:
        algo = self.algo
        return float(trajectory.success) if algo.replay_signal == "success" else trajectory.reward

    def inject(self, trajectories: list[Trajectory]) -> tuple[list[Trajectory], int]:
        """`apply_replay` with this run's options (one RNG per step, so resume is exact)."""
        algo = self.algo
        return apply_replay(
            trajectories,
            self.buffer,
            signal=self.signal,
            max_std=algo.all_fail_std,
            max_mean=algo.all_fail_mean,
            inject_at=algo.inject_at,
            rng=np.random.default_rng([self.config.run.seed, self.step]),
        )

    async def _filter_pool(self) -> dict[str, float]:
        """§3.3: keep the pool tasks the initial policy solves at least once in `filter_trials` tries."""
        algo = self.algo
        sampler = self.sampler
        assert isinstance(sampler, TaskPoolSampler), "filter_tasks without rollout.task_pool (see __init__)"
        pool = sampler.pool
        config = dataclasses.replace(self.rollout_config(2**31 - 1), group_size=algo.filter_trials)
        results, _ = await self.roll_out(pool, config)
        solved = {t.group_index for t in results if t.success}
        sampler.keep([task for i, task in enumerate(pool) if i in solved])
        self._filtered = True
        return {"sampling/valuable_tasks": float(len(solved)), "sampling/pool_tasks": float(len(pool))}

    async def collect(self, tasks: list[Task]) -> tuple[list[Trajectory], dict[str, float]]:
        metrics: dict[str, float] = {}
        if not self._filtered:
            metrics.update(await self._filter_pool())
            tasks = self.sampler.sample(len(tasks))
        trajectories, grpo_metrics = await super().collect(tasks)
        metrics["replay/fresh_success"] = mean_or_zero([t.success for t in trajectories])
        trajectories, injected = self.inject(trajectories)
        metrics.update(grpo_metrics)
        metrics["replay/injected"] = float(injected)
        metrics["replay/buffer_size"] = float(len(self.buffer))
        metrics["replay/tasks_buffered"] = float(len(self.buffer.buffers))
        return trajectories, metrics

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "replay_buffer": self.buffer.state_dict(), "filtered": self._filtered}

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        self.buffer.load_state_dict(state["replay_buffer"])
        self._filtered = bool(state["filtered"])


register_algorithm("arpo", config=ARPOConfig, trainer=ARPOTrainer)
