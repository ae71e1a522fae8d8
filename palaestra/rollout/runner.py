"""The async multi-turn rollout runner.

One coroutine per episode; all episodes run at once (up to `max_concurrency`), so at every moment the
policy backend sees every pending turn's request and can batch them into one forward pass. Env steps
run inline on the event loop (cheap envs) or in a thread pool with a per-step timeout (`env_executor`).
An env that raises or times out ends its own episode with `Trajectory.error` set; the others go on.

The pool's threads are daemons that nobody joins: a step stuck past its timeout (an endless loop, a
hung subprocess) is abandoned, and cannot keep the process alive once the caller is done.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from palaestra.agents.base import Generation, GenerationRequest, Message, Policy, SamplingParams
from palaestra.envs.registration import make
from palaestra.rollout.chat import TokenChat, env_message, observation_text
from palaestra.rollout.trajectory import Trajectory, Turn

__all__ = ["EpisodeError", "RolloutConfig", "RolloutRunner", "Task", "rollout"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One task to roll out: an env id, its kwargs and the reset seed (and options).

    Attributes:
        env_id: registered env id.
        seed: `reset` seed; the `group_size` samples of a task share it.
        env_kwargs: kwargs for `palaestra.make`.
        options: `reset` options (e.g. {"task_index": 3} for dataset envs).
    """

    env_id: str
    seed: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] | None = None


@dataclass(frozen=True)
class RolloutConfig:
    """How episodes are run.

    Attributes:
        group_size: samples per task (same seed), for group-relative advantages.
        max_turns: cap on actions per episode on top of the env's own limit (None = env's limit).
        max_context_tokens: truncate an episode whose next prompt would exceed this (token backends).
        step_timeout_s: per-step limit for env.reset/env.step (thread executor only).
        env_executor: "inline" runs env steps on the event loop; "thread" in a pool, with timeouts;
            "auto" (default) runs them inline unless the env declares `metadata["blocking_step"]`
            (its steps wait on a subprocess or a browser: code, web envs), then in the pool.
        max_concurrency: episodes in flight at once.
        sampling: sampling parameters for every reply; the seed (if any) is varied per episode and turn.
    """

    group_size: int = 1
    max_turns: int | None = None
    max_context_tokens: int | None = None
    step_timeout_s: float | None = None
    env_executor: Literal["inline", "thread", "auto"] = "auto"
    max_concurrency: int = 64
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise ValueError(f"group_size={self.group_size}; it must be >= 1")
        if self.max_turns is not None and self.max_turns < 1:
            raise ValueError(f"max_turns={self.max_turns}; it must be >= 1 or None")
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency={self.max_concurrency}; it must be >= 1")
        if self.step_timeout_s is not None and not self.step_timeout_s > 0:
            raise ValueError(f"step_timeout_s={self.step_timeout_s}; it must be > 0 seconds, or None")
        if self.max_context_tokens is not None and self.max_context_tokens < 1:
            raise ValueError(f"max_context_tokens={self.max_context_tokens}; it must be >= 1 or None")
        if self.step_timeout_s is not None and self.env_executor != "thread":
            raise ValueError(
                "step_timeout_s needs env_executor='thread' (an inline step cannot be interrupted)"
            )


class EpisodeError(RuntimeError):
    """An episode could not go on (env crash, step timeout, generation error)."""


def _episode_seed(base: int | None, task_seed: int, sample: int, turn: int) -> int | None:
    if base is None:
        return None
    return int(np.random.SeedSequence([base, task_seed & 0xFFFFFFFF, sample, turn]).generate_state(1)[0])


def _blocking(env: gym.Env) -> bool:
    """Whether the env's calls wait on a subprocess or browser (`metadata["blocking_step"]`)."""
    return bool(getattr(env.unwrapped, "metadata", {}).get("blocking_step", False))


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    """Copy of an info dict with numpy scalars/arrays turned into Python values."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[str(key)] = value
    return out


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


class RolloutRunner:
    """Runs episodes of one policy concurrently and records token-exact trajectories.

    Args:
        policy: any `Policy`; token-level backends (with a tokenizer) get exact prompt ids.
        config: rollout settings.
        env_factory: builds an env from (env_id, kwargs); defaults to `palaestra.make`.
    """

    def __init__(
        self,
        policy: Policy,
        config: RolloutConfig | None = None,
        env_factory: Callable[..., gym.Env] | None = None,
    ):
        self.policy = policy
        self.config = config or RolloutConfig()
        self.env_factory = env_factory or (lambda env_id, **kw: make(env_id, **kw))
        images = bool(getattr(policy, "accepts_images", False))
        self.chat = TokenChat(policy.tokenizer, images=images) if policy.tokenizer is not None else None
        self._pool: _DaemonPool | None = None

    async def run(
        self, tasks: Sequence[Task], on_episode_end: Callable[[Trajectory], None] | None = None
    ) -> list[Trajectory]:
        """Roll out `group_size` samples of every task.

        Returns:
            Trajectories ordered by (task, sample): task i's samples at [i*G, (i+1)*G).
        """
        cfg = self.config
        limit = asyncio.Semaphore(cfg.max_concurrency)

        async def one(group: int, task: Task, sample: int) -> Trajectory:
            async with limit:
                traj = await self.run_episode(task, group_index=group, sample_index=sample)
            if on_episode_end is not None:
                on_episode_end(traj)
            return traj

        jobs = [one(g, task, s) for g, task in enumerate(tasks) for s in range(cfg.group_size)]
        return list(await asyncio.gather(*jobs))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _call_env(
        self, fn: Callable[..., Any], *args: Any, blocking: bool = False, **kwargs: Any
    ) -> Any:
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
            raise EpisodeError(
                f"env call {fn.__name__} exceeded step_timeout_s={self.config.step_timeout_s}"
            ) from exc

    async def run_episode(self, task: Task, *, group_index: int = 0, sample_index: int = 0) -> Trajectory:
        """Run one episode; never raises for env or generation failures (see `Trajectory.error`)."""
        traj = Trajectory(
            env_id=task.env_id,
            seed=task.seed,
            group_index=group_index,
            sample_index=sample_index,
            agent=self.policy.name,
            env_kwargs=dict(task.env_kwargs),
        )
        env: gym.Env | None = None
        try:
            env = await self._call_env(self.env_factory, task.env_id, **task.env_kwargs)
            await self._play(env, task, traj)
        except Exception as exc:
            traj.error = f"{type(exc).__name__}: {exc}"
            traj.success = False
            logger.warning(
                "episode %s seed=%d failed: %s\n%s",
                task.env_id,
                task.seed,
                traj.error,
                traceback.format_exc(),
            )
        finally:
            if env is not None:
                try:  # under a timeout too: the env may still be stuck in a step
                    await self._call_env(env.close, blocking=_blocking(env))
                except Exception as exc:
                    logger.warning("closing %s failed: %s", task.env_id, exc)
        return traj

    async def _play(self, env: gym.Env, task: Task, traj: Trajectory) -> None:
        cfg = self.config
        blocking = _blocking(env)
        observation, info = await self._call_env(
            env.reset, seed=task.seed, options=task.options, blocking=blocking
        )
        traj.task_id = str(info.get("task_id", ""))
        system_prompt = getattr(env.unwrapped, "system_prompt", "")
        messages: list[Message] = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append(env_message(observation, info.get("role", "user")))
        traj.messages = messages
        if self.chat is not None:
            self._append(traj, self.chat.prompt_ids(messages), trainable=False)
            traj.prompt_length = len(traj.token_ids)

        turn = 0
        while True:
            if self._context_full(traj):
                self._truncate(traj)
                return
            sampling = replace(
                cfg.sampling, seed=_episode_seed(cfg.sampling.seed, task.seed, traj.sample_index, turn)
            )
            request = GenerationRequest(
                messages=tuple(messages),
                sampling=sampling,
                prompt_token_ids=tuple(traj.token_ids) if self.chat is not None else None,
                info=info,
                request_id=f"{task.env_id}/{task.seed}/{traj.sample_index}/{turn}",
            )
            (generation,) = await self.policy.generate([request])
            if generation.finish_reason == "error":
                raise EpisodeError(f"generation failed: {generation.error}")
            if generation.prompt_token_ids is not None and self.chat is not None:
                self._adopt_engine_prompt(traj, generation.prompt_token_ids)
            span = self._append_reply(traj, generation)
            messages.append({"role": "assistant", "content": generation.text})

            observation, reward, terminated, truncated, info = await self._call_env(
                env.step, generation.text, blocking=blocking
            )
            turn += 1
            if cfg.max_turns is not None and turn >= cfg.max_turns and not terminated:
                truncated = True
            traj.turns.append(
                Turn(
                    action=generation.text,
                    observation=observation_text(observation),
                    reward=float(reward),
                    terminated=bool(terminated),
                    truncated=bool(truncated),
                    info=_jsonable(info),
                    finish_reason=generation.finish_reason,
                    token_span=span,
                )
            )
            traj.success = bool(info.get("success", False))
            if terminated or truncated:
                traj.terminated, traj.truncated = bool(terminated), bool(truncated)
                return
            message = env_message(observation, info.get("role", "user"))
            messages.append(message)
            if self.chat is not None:
                self._append(
                    traj, self.chat.continuation_ids(generation.token_ids, [message]), trainable=False
                )

    def _context_full(self, traj: Trajectory) -> bool:
        limit = self.config.max_context_tokens
        return limit is not None and len(traj.token_ids) + self.config.sampling.max_new_tokens > limit

    @staticmethod
    def _truncate(traj: Trajectory) -> None:
        traj.truncated = True
        if traj.turns:
            traj.turns[-1].truncated = True

    @staticmethod
    def _append(
        traj: Trajectory, ids: Sequence[int], *, trainable: bool, logprobs: Sequence[float] | None = None
    ) -> None:
        traj.token_ids.extend(int(i) for i in ids)
        traj.loss_mask.extend([int(trainable)] * len(ids))
        traj.logprobs.extend([float(x) for x in logprobs] if logprobs is not None else [0.0] * len(ids))

    @staticmethod
    def _adopt_engine_prompt(traj: Trajectory, engine_ids: Sequence[int]) -> None:
        """Record the prompt as the engine saw it (a vision model expands each image placeholder).

        Everything up to the end of the last reply was recorded expanded already; only the ids appended
        since (the new messages, with the new image's placeholder) change, and they are not trained on.
        """
        start = traj.turns[-1].token_span[1] if traj.turns else 0
        if list(engine_ids[:start]) != traj.token_ids[:start]:
            raise EpisodeError(
                "the engine's prompt does not start with the trajectory's tokens; the backend changed "
                "tokens other than the image placeholders"
            )
        tail = [int(i) for i in engine_ids[start:]]
        del traj.token_ids[start:], traj.loss_mask[start:], traj.logprobs[start:]
        RolloutRunner._append(traj, tail, trainable=False)
        if not traj.turns:
            traj.prompt_length = len(traj.token_ids)

    def _append_reply(self, traj: Trajectory, generation: Generation) -> tuple[int, int]:
        if self.chat is None:
            return (0, 0)
        if not generation.token_ids:
            raise EpisodeError(f"policy {self.policy.name} has a tokenizer but returned no token ids")
        start = len(traj.token_ids)
        self._append(traj, generation.token_ids, trainable=True, logprobs=generation.logprobs)
        return (start, len(traj.token_ids))


def rollout(
    policy: Policy,
    tasks: Sequence[Task],
    config: RolloutConfig | None = None,
    on_episode_end: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory]:
    """Synchronous convenience wrapper: run `tasks` with `policy` and return the trajectories."""

    async def main() -> list[Trajectory]:
        runner = RolloutRunner(policy, config)
        try:
            return await runner.run(tasks, on_episode_end=on_episode_end)
        finally:
            runner.close()

    return asyncio.run(main())
