"""The producer of the asynchronous pipeline: groups of episodes always in flight, complete ones queued.

    learner thread                              producer thread (its own asyncio loop)
    take() <- bounded queue of complete groups  <- run(task, config): one group of `group_size` episodes
    (update, then new weights to the source)      plan(step): the tasks and RolloutConfig of a step
    wake()  -> the producer re-reads `version`    starts a group when one of `in_flight` slots is free

Groups are planned in steps of `groups_per_step` tasks, as the synchronous trainer samples them (step s:
its tasks, its sampling seed), and numbered (step, index). The producer starts the next planned group
whenever fewer than `in_flight` groups are in flight or waiting and, under the staleness bound
(`max_staleness` K with `wait_for_learner`), only while the groups started and not dropped number at
most (V - V0 + K + 1) x `groups_per_step` + R, V the policy version the producer's rollouts run with,
V0 the one it started with and R the groups the learner took beyond its steps' share (dropped as too
stale, or extra groups for dynamic sampling; it reports them with `release`): a group started at
version V is trained on by version V + K at the latest, unless it finished after younger ones. With K = 0 the producer starts step
s only once the weights of update s arrived, which is the synchronous schedule.

Weights are the rollout source's business: it loads new ones between generate calls, without stopping
the episodes in flight (their next turns use the new weights; every token records its version).

The queue holds at most `queue_groups` groups; complete groups that do not fit wait in the producer,
which then starts no new group, so at most `queue_groups + groups_per_step` groups exist at once.
A group is never lost: an episode that fails is a trajectory with `error` set, and an exception of the
producer itself (not of an episode) is raised to the learner by `take`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from palaestra.rollout.runner import RolloutConfig, Task
from palaestra.rollout.trajectory import Trajectory

__all__ = ["Group", "GroupProducer", "PlannedStep", "ProducerStopped"]

logger = logging.getLogger(__name__)


class ProducerStopped(RuntimeError):
    """The producer failed or was closed; the message says why."""


@dataclass(frozen=True)
class PlannedStep:
    """The tasks of one planned step and how their episodes run (the step's sampling seed)."""

    tasks: Sequence[Task]
    config: RolloutConfig


@dataclass
class Group:
    """The `group_size` trajectories of one task.

    Attributes:
        step: the planned step whose tasks it came from.
        index: its task's index in that step.
        trajectories: ordered by sample.
        started_version: the producer's policy version when the group started.
    """

    step: int
    index: int
    trajectories: list[Trajectory]
    started_version: int

    @property
    def min_version(self) -> int | None:
        """The oldest policy version of its sampled tokens (None: none recorded)."""
        versions = [v for t in self.trajectories if (v := t.min_version) is not None]
        return min(versions) if versions else None


class GroupProducer:
    """Runs groups on a thread of its own and hands the complete ones to the learner (module docstring).

    Args:
        run: rolls out `group_size` samples of a task with a config (e.g. `RolloutSource.run([task], c)`).
        plan: the tasks and rollout config of a planned step (called on the producer thread, in order).
        version: the policy version the rollouts currently run with (read on the producer thread).
        groups_per_step: groups the learner trains on per step (`tasks_per_step`).
        max_staleness: K; with `wait_for_learner`, the start rule above.
        in_flight: groups running (or done and waiting for room in the queue) at most; default
            `groups_per_step` (the start rule may allow up to (K + 1) x `groups_per_step`).
        wait_for_learner: apply the start rule (else the producer never waits for the learner).
        queue_groups: complete groups the queue holds at most.
        first_step: the planned step to start with (a resumed run's step).
    """

    def __init__(
        self,
        run: Callable[[Task, RolloutConfig], Awaitable[list[Trajectory]]],
        plan: Callable[[int], PlannedStep],
        *,
        version: Callable[[], int],
        groups_per_step: int,
        max_staleness: int,
        wait_for_learner: bool,
        queue_groups: int,
        in_flight: int | None = None,
        first_step: int = 0,
    ):
        if groups_per_step < 1 or max_staleness < 0 or queue_groups < 1:
            raise ValueError(
                f"groups_per_step={groups_per_step}, max_staleness={max_staleness}, "
                f"queue_groups={queue_groups}; need >= 1, >= 0, >= 1"
            )
        self._run, self._plan, self._version = run, plan, version
        self.groups_per_step, self.max_staleness = groups_per_step, max_staleness
        self.wait_for_learner = wait_for_learner
        self.in_flight = in_flight or groups_per_step
        self._queue: queue.Queue[Group | BaseException] = queue.Queue(maxsize=queue_groups)
        self._next = (first_step, 0)  # the next group to start: (planned step, index)
        self._started = 0
        self._released = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="palaestra-producer", daemon=True)

    # -- learner side ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the producer thread (returns once its loop runs)."""
        self._thread.start()
        self._ready.wait()

    def take(self, timeout: float | None = None) -> Group:
        """The next complete group (blocks until one is ready).

        Raises:
            ProducerStopped: the producer failed (its error is the cause) or was closed.
            TimeoutError: nothing came within `timeout` seconds.
        """
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no group came from the producer within {timeout} s") from None
        self.wake()
        if isinstance(item, BaseException):
            self._queue.put(item)  # every later take fails the same way
            raise ProducerStopped(f"the rollout producer failed: {item}") from item
        return item

    def release(self, count: int = 1) -> None:
        """The learner takes `count` groups beyond its steps' share (it dropped some as too stale, or
        wants more for dynamic sampling): that many more may be started."""
        with self._lock:
            self._released += count
        self.wake()

    def wake(self) -> None:
        """Have the producer check again whether it may start groups (new version, queue space)."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The producer's event loop (a rollout source schedules weight loads on it)."""
        return self._loop

    def close(self) -> None:
        """Stop starting groups, cancel the ones in flight and end the thread."""
        self._stop = True
        self.wake()
        self._thread.join(timeout=30)

    # -- producer thread ---------------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the learner by `take`
            logger.exception("the rollout producer failed")
            self._put_error(exc)
        finally:
            self._ready.set()

    def _put_error(self, exc: BaseException) -> None:
        while True:
            try:
                self._queue.put_nowait(exc)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()  # the learner gets the error instead of old groups

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        base_version = self._version()
        self._ready.set()
        running: set[asyncio.Task[Group]] = set()
        done: deque[Group] = deque()  # complete groups the queue had no room for
        planned: PlannedStep | None = None
        try:
            while not self._stop:
                self._wake.clear()
                while done:  # hand over what fits
                    try:
                        self._queue.put_nowait(done[0])
                    except queue.Full:
                        break
                    done.popleft()
                while len(running) + len(done) < self.in_flight and self._may_start(base_version):
                    step, index = self._next
                    if planned is None:
                        planned = self._plan(step)
                    task = planned.tasks[index]
                    running.add(asyncio.ensure_future(self._group(step, index, task, planned.config)))
                    self._started += 1
                    index += 1
                    if index == len(planned.tasks):
                        step, index, planned = step + 1, 0, None
                    self._next = (step, index)
                waiter = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({*running, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                for job in [j for j in running if j.done()]:
                    running.discard(job)
                    done.append(job.result())  # an exception here is the producer's own: it stops
        finally:
            for job in running:
                job.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    def _may_start(self, base_version: int) -> bool:
        if self._stop:
            return False
        if not self.wait_for_learner:
            return True
        with self._lock:
            live = self._started - self._released
        return live < (self._version() - base_version + self.max_staleness + 1) * self.groups_per_step

    async def _group(self, step: int, index: int, task: Task, config: RolloutConfig) -> Group:
        version = self._version()
        trajectories = await self._run(task, config)
        for t in trajectories:
            t.group_index = index
        return Group(step, index, list(trajectories), version)
