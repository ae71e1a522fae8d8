"""The episode driver: every rollout kind is one loop with a per-turn strategy.

    env = make_env()                          (inline, or in the daemon pool under a step timeout)
    observation, info = env.reset(seed, options);  strategy.start(...)
    loop:
        context full?        -> strategy.truncate(), stop
        action = strategy.act(turn)            what the env receives; None: the strategy ended the episode
        env.step(action)                        inline, or in the pool with `step_timeout_s`
        strategy.record(turn, action, step)     what is recorded; False: stop
        stop on terminated / truncated / max_turns
    any exception -> strategy.fail(error): the episode is recorded as failed, the others go on
    the env is closed in every case (under the timeout too: it may still be stuck in a step)

Strategies: `runner.py` (the policy's reply: plain episodes), `semi_online.py` (the expert's action on a
mismatch), `critique.py` (a refined action; a scored refinement) and `matches.py` (every seat of a
multi-player game). Seeding (`episode_seed`, `tagged_seed`), step timeouts, blocking envs, context
limits and failure isolation live here once.

The pool's threads are daemons that nobody joins: a step stuck past its timeout (an endless loop, a
hung subprocess) is abandoned, and cannot keep the process alive once the caller is done.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import traceback
import zlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from palaestra.rollout.runner import RolloutConfig

__all__ = [
    "Episode",
    "EpisodeDriver",
    "EpisodeError",
    "Step",
    "TurnStrategy",
    "episode_seed",
    "run_one",
    "run_samples",
    "tagged_seed",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")


class EpisodeError(RuntimeError):
    """An episode could not go on (env crash, step timeout, generation error)."""


def episode_seed(base: int | None, task_seed: int, sample: int, turn: int, salt: int = 0) -> int | None:
    """The sampling seed of one turn of one sample of a task (None if sampling is unseeded).

    `salt` (> 0) separates a second generation of the same turn (a patch's thought) from the reply's.
    """
    if base is None:
        return None
    key = [base, task_seed & 0xFFFFFFFF, sample, turn] + ([salt] if salt else [])
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def tagged_seed(base: int | None, task_seed: int, tag: str) -> int | None:
    """The sampling seed of a generation named by `tag` (critique-guided candidates and refinements)."""
    if base is None:
        return None
    return (base + zlib.crc32(f"{task_seed}/{tag}".encode())) % (2**31)


def is_blocking(env: gym.Env) -> bool:
    """Whether the env's calls wait on a subprocess or browser (`metadata["blocking_step"]`)."""
    return bool(getattr(env.unwrapped, "metadata", {}).get("blocking_step", False))


def jsonable(info: dict[str, Any]) -> dict[str, Any]:
    """Copy of an info dict with numpy scalars/arrays turned into Python values."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[str(key)] = value
    return out


@dataclass(frozen=True)
class Episode:
    """What the driver needs to run one episode.

    Attributes:
        make_env: builds the env.
        seed: the `reset` seed.
        options: the `reset` options.
        max_turns: stop after this many steps (None: the env's own limit).
        label: names the episode in logs ("env_id seed=3").
    """

    make_env: Callable[[], gym.Env]
    seed: int | None
    options: dict[str, Any] | None = None
    max_turns: int | None = None
    label: str = ""


@dataclass(frozen=True)
class Step:
    """What one `env.step` gave back.

    Attributes:
        observation: the env's observation.
        reward: the step reward.
        terminated: the env ended the task.
        truncated: the env's own limit ended the episode.
        info: the env's info.
        turn_limit: the driver's `max_turns` ends the episode after this step.
    """

    observation: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    turn_limit: bool


class TurnStrategy:
    """Per-turn decisions of one episode: what the env receives and what is recorded."""

    async def start(self, env: gym.Env, observation: Any, info: dict[str, Any]) -> None:
        """The env was reset."""

    def context_tokens(self) -> int | None:
        """Tokens of the next prompt, for `max_context_tokens` (None: not limited)."""
        return None

    def truncate(self) -> None:
        """The context limit ends the episode before the next reply."""

    async def act(self, turn: int) -> str | None:
        """The action the env receives at `turn`; None ends the episode (the strategy recorded why)."""
        raise NotImplementedError

    async def record(self, turn: int, action: str, step: Step) -> bool:
        """Record the env's answer to `action`; False ends the episode."""
        raise NotImplementedError

    def fail(self, error: str) -> None:
        """The episode failed with `error` (`"ExceptionType: message"`)."""
        raise NotImplementedError


class _DaemonPool(Executor):
    """A thread pool whose workers are daemon threads that are never joined at exit.

    `ThreadPoolExecutor` joins its workers when the interpreter exits, so one env step stuck for good
    would hold the process after its episode timed out. Here a stuck call is `abandon`ed: its thread
    keeps no slot (a new worker takes its place) and dies with the process.

    Args:
        max_workers: most threads running calls at once (abandoned ones not counted).
        name: thread name prefix.
    """

    def __init__(self, max_workers: int, name: str = "palaestra-env"):
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._workers = 0
        self._started = 0
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._work.put((future, lambda: fn(*args, **kwargs)))
            if not self._idle.acquire(blocking=False) and self._workers < self._max_workers:
                self._workers += 1
                self._started += 1
                name = f"{self._name}_{self._started}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
        return future

    def abandon(self) -> None:
        """Give up on one running call (it timed out): its worker no longer counts towards the limit."""
        with self._lock:
            self._workers -= 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the idle workers (never waits for running calls, whatever `wait` says)."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            for _ in range(self._started):  # one each for every thread that may still serve
                self._work.put(None)

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as exc:  # handed to the waiting coroutine, like ThreadPoolExecutor
                    future.set_exception(exc)
            del item, future, call
            self._idle.release()


class EpisodeDriver:
    """Runs episodes with per-turn strategies (see the module docstring).

    Args:
        config: `env_executor`, `step_timeout_s`, `max_concurrency`, `max_context_tokens` and the
            reply budget `sampling.max_new_tokens` are read.
    """

    def __init__(self, config: RolloutConfig):
        self.config = config
        self._pool: _DaemonPool | None = None

    async def call(self, fn: Callable[..., Any], *args: Any, blocking: bool = False, **kwargs: Any) -> Any:
        """Call an env function inline or in the daemon pool under `step_timeout_s`."""
        executor = self.config.env_executor
        if executor == "inline" or (executor == "auto" and not blocking):
            return fn(*args, **kwargs)
        if self._pool is None:
            self._pool = _DaemonPool(self.config.max_concurrency)
        call = self._pool.submit(fn, *args, **kwargs)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(call), timeout=self.config.step_timeout_s)
        except asyncio.TimeoutError as exc:
            if call.running():  # stuck, maybe for good: its thread must not take a slot
                self._pool.abandon()
            name = getattr(fn, "__name__", type(fn).__name__)
            raise EpisodeError(
                f"env call {name} exceeded step_timeout_s={self.config.step_timeout_s}"
            ) from exc

    async def run_all(self, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run `jobs` concurrently, at most `max_concurrency` at once; results in the order of `jobs`."""
        limit = asyncio.Semaphore(self.config.max_concurrency)

        async def one(job: Callable[[], Awaitable[T]]) -> T:
            async with limit:
                return await job()

        return list(await asyncio.gather(*(one(job) for job in jobs)))

    async def run(self, episode: Episode, strategy: TurnStrategy) -> str | None:
        """Run one episode; never raises for env or generation failures.

        Returns:
            The error that ended the episode (also given to `strategy.fail`), or None.
        """
        env: gym.Env | None = None
        try:
            env = await self.call(episode.make_env)
            await self._loop(env, episode, strategy)
            return None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            strategy.fail(error)
            logger.warning("episode %s failed: %s\n%s", episode.label, error, traceback.format_exc())
            return error
        finally:
            if env is not None:
                try:  # under a timeout too: the env may still be stuck in a step
                    await self.call(env.close, blocking=is_blocking(env))
                except Exception as exc:
                    logger.warning("closing %s failed: %s", episode.label, exc)

    async def _loop(self, env: gym.Env, episode: Episode, strategy: TurnStrategy) -> None:
        blocking = is_blocking(env)
        observation, info = await self.call(
            env.reset, seed=episode.seed, options=episode.options, blocking=blocking
        )
        await strategy.start(env, observation, info)
        turn = 0
        while True:
            if self._context_full(strategy):
                strategy.truncate()
                return
            action = await strategy.act(turn)
            if action is None:
                return
            observation, reward, terminated, truncated, info = await self.call(
                env.step, action, blocking=blocking
            )
            turn += 1
            limit = episode.max_turns is not None and turn >= episode.max_turns and not terminated
            step = Step(observation, float(reward), bool(terminated), bool(truncated), info, limit)
            if not await strategy.record(turn - 1, action, step) or terminated or truncated or limit:
                return

    def _context_full(self, strategy: TurnStrategy) -> bool:
        limit, tokens = self.config.max_context_tokens, strategy.context_tokens()
        return (
            limit is not None and tokens is not None and tokens + self.config.sampling.max_new_tokens > limit
        )

    def close(self) -> None:
        """Stop the pool's idle workers (stuck ones are abandoned)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


async def run_samples(
    config: RolloutConfig,
    tasks: Sequence[K],
    group_size: int,
    episode: Callable[[K, int, int, EpisodeDriver], Awaitable[T]],
) -> list[T]:
    """`episode(task, group, sample, driver)` for `group_size` samples of every task, on one driver.

    Results are ordered by (task, sample); the driver (and its thread pool) is closed afterwards.
    """
    driver = EpisodeDriver(config)
    try:
        jobs = [
            partial(episode, task, g, s, driver) for g, task in enumerate(tasks) for s in range(group_size)
        ]
        return await driver.run_all(jobs)
    finally:
        driver.close()


async def run_one(
    config: RolloutConfig, episode: Episode, strategy: TurnStrategy, driver: EpisodeDriver | None = None
) -> None:
    """Run one episode on `driver`, or on a driver of its own that is closed afterwards."""
    used = driver or EpisodeDriver(config)
    try:
        await used.run(episode, strategy)
    finally:
        if driver is None:
            used.close()
