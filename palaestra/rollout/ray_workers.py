"""Rollouts on a Ray cluster: rollout workers that own a policy backend, env workers that host envs.

One controller (`RayRollout`, in the driver) hands out episodes; each episode is one call to a
rollout worker, which runs it with the ordinary `RolloutRunner.run_episode` (same seeds, same
token-exact trajectory as a local run). Env workers, when asked for, host the envs (heavy ones:
browsers, sandboxes) in their own processes; the rollout worker steps them through a proxy env.

Other rollout kinds (semi-online, critique-guided) go as `WorkerJob`s (`rollout/remote_jobs.py`): picklable
descriptions that the rollout worker runs with its own policy (`run_jobs_async`, same order as the jobs).

Failures: actors are created with `max_restarts` and `max_task_retries`, so when a worker process dies
Ray restarts it and re-runs its in-flight episodes; an episode whose env worker died is re-run from
the start. An episode that still fails is returned with `Trajectory.error` set: none is lost.

    ray.init(address="auto")          # or ray.init() for a local cluster
    rollout = RayRollout("vllm:/models/qwen", num_workers=8, worker_options={"num_gpus": 1})
    trajectories = rollout.run(tasks)
    rollout.sync_weights(model.state_dict())

The trainer drives it through `rollout.ray` in a training config (`trainers/core/ray_source.py`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol, SupportsFloat

import gymnasium as gym

from palaestra.agents.base import Policy
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task, sync_policy
from palaestra.rollout.trajectory import Trajectory

__all__ = ["RayRollout", "RemoteEnv", "WorkerJob"]

logger = logging.getLogger(__name__)

_INSTALL = "the Ray rollout needs ray: pip install 'palaestra[ray]'"


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(_INSTALL) from exc
    if not ray.is_initialized():
        raise RuntimeError("call ray.init() first (ray.init(address='auto') to join a running cluster)")
    return ray


def _run_setup(setup: str | None) -> None:
    """Import `package.module:function` and call it (registers custom envs in a worker process)."""
    if not setup:
        return
    import importlib

    module, sep, name = setup.partition(":")
    if not sep:
        raise ValueError(f"worker_setup={setup!r}; expected 'package.module:function'")
    getattr(importlib.import_module(module), name)()


def _lost_actor_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    return (RayActorError, ActorDiedError, ActorUnavailableError)


class _EnvWorker:
    """Hosts envs by key; threaded (`max_concurrency`), so several envs step at once."""

    def __init__(self, setup: str | None) -> None:
        _run_setup(setup)
        self.envs: dict[str, gym.Env] = {}
        self.counter = itertools.count()

    def open(self, env_id: str, kwargs: dict[str, Any]) -> tuple[str, str, bool]:
        from palaestra.envs.registration import make

        env = make(env_id, **kwargs)
        key = f"env-{next(self.counter)}"
        self.envs[key] = env
        unwrapped = env.unwrapped
        blocking = bool(getattr(unwrapped, "metadata", {}).get("blocking_step", False))
        return key, str(getattr(unwrapped, "system_prompt", "")), blocking

    def reset(self, key: str, seed: int | None, options: dict[str, Any] | None) -> tuple[Any, dict]:
        return self.envs[key].reset(seed=seed, options=options)

    def step(self, key: str, action: str) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        return self.envs[key].step(action)

    def close(self, key: str) -> None:
        env = self.envs.pop(key, None)
        if env is not None:
            env.close()


class RemoteEnv(gym.Env):
    """A gymnasium env whose `reset`/`step` run in an env worker (blocking calls: the rollout runs
    them in its thread pool, `metadata["blocking_step"] = True`)."""

    metadata: dict[str, Any] = {"blocking_step": True}  # noqa: RUF012

    def __init__(self, worker: Any, env_id: str, kwargs: Mapping[str, Any]):
        ray = _ray()
        self._ray, self.worker, self.env_id = ray, worker, env_id
        self.key, self.system_prompt, _ = ray.get(worker.open.remote(env_id, dict(kwargs)))
        self.observation_space = gym.spaces.Text(max_length=1 << 20)
        self.action_space = gym.spaces.Text(max_length=1 << 20)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        return self._ray.get(self.worker.reset.remote(self.key, seed, options))

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict]:
        return self._ray.get(self.worker.step.remote(self.key, action))

    def close(self) -> None:
        try:
            self._ray.get(self.worker.close.remote(self.key))
        except _lost_actor_errors():
            pass  # the worker died with the env in it


class WorkerJob(Protocol):
    """One episode of another rollout kind (semi-online, critique-guided; `rollout/remote_jobs.py`): a
    picklable description that the worker runs with its own policy."""

    @property
    def label(self) -> str:
        """Names the episode in logs."""
        ...

    async def run(self, worker: _RolloutWorker) -> Any:
        """Run the episode on `worker` (`policy`, `make_env`, `cached`); never raises for env failures:
        the result's `error` says why it failed."""
        ...

    def failed(self, error: str) -> Any:
        """The result of an episode whose worker was lost (its `error` set)."""
        ...


class _RolloutWorker:
    """Owns one policy backend and runs episodes on it (an async actor: episodes run concurrently)."""

    def __init__(
        self,
        policy_spec: str | Callable[..., Policy],
        policy_options: dict[str, Any],
        config: RolloutConfig,
        env_workers: list[Any],
        env_retries: int,
        setup: str | None,
    ):
        from palaestra.agents.spec import make_policy

        _run_setup(setup)
        if callable(policy_spec):
            self.policy = policy_spec(**policy_options)
        else:
            self.policy = make_policy(policy_spec, **policy_options)
        self.env_workers = env_workers
        self.env_retries = env_retries
        self.round_robin = itertools.count()
        self.env_factory = self._remote_env if env_workers else None
        self.version = 0  # of the weights last synced (a restarted worker is back at its initial ones)
        self.runner = self._runner(config)
        self.limit: asyncio.Semaphore | None = None
        self.cache: dict[Hashable, Any] = {}

    def _runner(self, config: RolloutConfig) -> RolloutRunner:
        return RolloutRunner(self.policy, config, env_factory=self.env_factory, version=lambda: self.version)

    def make_env(self, env_id: str, **kwargs: Any) -> gym.Env:
        """The env of a task: in an env worker when there are any, else in this process."""
        if self.env_factory is not None:
            return self.env_factory(env_id, **kwargs)
        from palaestra.envs.registration import make

        return make(env_id, **kwargs)

    def cached(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """What jobs build once per worker (an auxiliary model, a demo set), by `key`."""
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]

    def _remote_env(self, env_id: str, **kwargs: Any) -> RemoteEnv:
        worker = self.env_workers[next(self.round_robin) % len(self.env_workers)]
        return RemoteEnv(worker, env_id, kwargs)

    async def episode(
        self, task: Task, group_index: int, sample_index: int, config: RolloutConfig | None = None
    ) -> Trajectory:
        if self.limit is None:
            self.limit = asyncio.Semaphore(self.runner.config.max_concurrency)
        if config is not None and config != self.runner.config:
            # e.g. the trainer's per-step sampling seed; episodes in flight keep their runner
            self.runner = self._runner(config)
        runner = self.runner
        lost = tuple(cls.__name__ for cls in _lost_actor_errors())
        async with self.limit:
            for attempt in range(self.env_retries + 1):
                traj = await runner.run_episode(task, group_index=group_index, sample_index=sample_index)
                if traj.error is None or not traj.error.startswith(lost):
                    return traj
                logger.warning("env worker lost in %s seed=%d (attempt %d)", task.env_id, task.seed, attempt)
        return traj

    async def job(self, job: WorkerJob) -> Any:
        """Run one `WorkerJob`; re-run when its env worker was lost, like `episode`."""
        if self.limit is None:
            self.limit = asyncio.Semaphore(self.runner.config.max_concurrency)
        lost = tuple(cls.__name__ for cls in _lost_actor_errors())
        async with self.limit:
            for attempt in range(self.env_retries + 1):
                result = await job.run(self)
                error = getattr(result, "error", None)
                if error is None or not error.startswith(lost):
                    return result
                logger.warning("env worker lost in %s (attempt %d)", job.label, attempt)
        return result

    def sync_weights(self, state_dict: Any, version: int | None = None) -> None:
        sync_policy(self.policy, state_dict, version)
        self.version = self.version if version is None else version

    def pid(self) -> int:
        import os

        return os.getpid()


class RayRollout:
    """Controller: spreads episodes over Ray rollout workers; same trajectories as `RolloutRunner`.

    Args:
        policy_spec: agent spec every worker builds (`vllm:/path`, `hf:...`, `scripted:...`), or an
            importable function that builds the policy from `policy_options` (the trainer ships its
            model this way).
        policy_options: options for `make_policy` (or the function); put in the object store once,
            so large values (weights) are copied to each node once.
        config: rollout settings (`max_concurrency` applies per worker; `run` can override the rest).
        num_workers: rollout workers (one backend each: one vLLM engine per GPU).
        num_env_workers: env workers to host envs in (0: envs run inside the rollout workers).
        worker_options: Ray actor options for rollout workers, e.g. {"num_gpus": 1} (default: none,
            so tiny local clusters can place them).
        env_worker_options: Ray actor options for env workers (e.g. {"num_cpus": 2}).
        max_restarts: restarts of a dead worker process.
        max_task_retries: re-runs of an episode whose worker died.
        env_concurrency: envs one env worker steps at once.
        worker_setup: `package.module:function` every worker process calls first (e.g. to register
            envs that are not in palaestra).
    """

    def __init__(
        self,
        policy_spec: str | Callable[..., Policy],
        *,
        policy_options: Mapping[str, Any] | None = None,
        config: RolloutConfig | None = None,
        num_workers: int = 1,
        num_env_workers: int = 0,
        worker_options: Mapping[str, Any] | None = None,
        env_worker_options: Mapping[str, Any] | None = None,
        max_restarts: int = 2,
        max_task_retries: int = 2,
        env_concurrency: int = 16,
        worker_setup: str | None = None,
    ):
        if num_workers < 1 or num_env_workers < 0:
            raise ValueError(
                f"num_workers={num_workers}, num_env_workers={num_env_workers}; need >= 1 and >= 0"
            )
        ray = _ray()
        self.config = config or RolloutConfig()
        restart = {"max_restarts": max_restarts, "max_task_retries": max_task_retries}
        env_cls = ray.remote(_EnvWorker)
        self.env_workers = [
            env_cls.options(
                num_cpus=0,
                max_concurrency=env_concurrency,
                max_restarts=max_restarts,
                **(env_worker_options or {}),
            ).remote(worker_setup)
            for _ in range(num_env_workers)
        ]
        worker_cls = ray.remote(_RolloutWorker)
        opts = {"num_cpus": 0, **restart, **(worker_options or {})}
        options_ref = ray.put(dict(policy_options or {}))  # a top-level ref: resolved in each worker
        self.workers = [
            worker_cls.options(**opts).remote(
                policy_spec,
                options_ref,
                self.config,
                self.env_workers,
                max_task_retries,
                worker_setup,
            )
            for _ in range(num_workers)
        ]
        self._ray = ray
        self._options_ref = options_ref  # kept alive: a restarted worker reads it again

    async def run_async(self, tasks: Sequence[Task], config: RolloutConfig | None = None) -> list[Trajectory]:
        """Roll out `group_size` samples of every task; ordered by (task, sample) like `RolloutRunner`.

        Args:
            tasks: the tasks.
            config: settings for these episodes (default: the constructor's); `max_concurrency`
                stays the constructor's, per worker.
        """
        config = config or self.config
        calls = []
        for i, (g, task, s) in enumerate(
            (g, task, s) for g, task in enumerate(tasks) for s in range(config.group_size)
        ):
            worker = self.workers[i % len(self.workers)]
            calls.append(self._one(worker, task, g, s, config))
        return list(await asyncio.gather(*calls))

    def run(self, tasks: Sequence[Task], config: RolloutConfig | None = None) -> list[Trajectory]:
        """`run_async` for code without an event loop."""
        return asyncio.run(self.run_async(tasks, config))

    async def _one(
        self, worker: Any, task: Task, group: int, sample: int, config: RolloutConfig
    ) -> Trajectory:
        try:
            return await worker.episode.remote(task, group, sample, config)
        except Exception as exc:  # the worker died past its retries, or the call failed
            logger.warning("episode %s seed=%d lost its worker: %s", task.env_id, task.seed, exc)
            return Trajectory(
                env_id=task.env_id,
                seed=task.seed,
                group_index=group,
                sample_index=sample,
                env_kwargs=dict(task.env_kwargs),
                error=f"{type(exc).__name__}: {exc}",
                success=False,
            )

    async def run_jobs_async(self, jobs: Sequence[WorkerJob]) -> list[Any]:
        """Run `WorkerJob`s (episodes of other rollout kinds) on the workers; results in the order of
        `jobs`. A job whose worker was lost past its retries gives `job.failed(error)`."""
        calls = [self._job(self.workers[i % len(self.workers)], job) for i, job in enumerate(jobs)]
        return list(await asyncio.gather(*calls))

    async def _job(self, worker: Any, job: WorkerJob) -> Any:
        try:
            return await worker.job.remote(job)
        except Exception as exc:  # the worker died past its retries, or the call failed
            logger.warning("episode %s lost its worker: %s", job.label, exc)
            return job.failed(f"{type(exc).__name__}: {exc}")

    def run_jobs(self, jobs: Sequence[WorkerJob]) -> list[Any]:
        """`run_jobs_async` for code without an event loop."""
        return asyncio.run(self.run_jobs_async(jobs))

    def sync_weights(self, state_dict: Mapping[str, Any], version: int | None = None) -> None:
        """Send new weights to every rollout worker (put in the object store once).

        A partial state dict is fine for the hf backend (only the named tensors change). `version`
        (the number of updates behind them) is recorded for the tokens sampled with them.
        """
        ref = self._ray.put({k: v.detach().cpu() for k, v in state_dict.items()})
        self._ray.get([w.sync_weights.remote(ref, version) for w in self.workers])

    def close(self) -> None:
        """Kill the workers (their backends and envs go with them)."""
        for actor in self.workers + self.env_workers:
            self._ray.kill(actor)
        self.workers, self.env_workers = [], []
