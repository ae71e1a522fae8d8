"""`GroupProducer`: groups always in flight, the staleness start rule, a bounded queue, no lost group."""

from __future__ import annotations

import asyncio
import time

import pytest

from palaestra.rollout.producer import GroupProducer, PlannedStep, ProducerStopped
from palaestra.rollout.runner import RolloutConfig, Task
from palaestra.rollout.trajectory import Trajectory


class FakeRollouts:
    """Plays a group as `group_size` one-token trajectories stamped with the current version."""

    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None):
        self.version = 0
        self.delay_s, self.fail_on = delay_s, fail_on
        self.started: list[int] = []

    async def run(self, task: Task, config: RolloutConfig) -> list[Trajectory]:
        self.started.append(task.seed)
        if task.seed == self.fail_on:
            raise RuntimeError("the producer's own bug")
        version = self.version
        await asyncio.sleep(self.delay_s)
        return [
            Trajectory(
                "e",
                task.seed,
                sample_index=s,
                token_ids=[1],
                loss_mask=[1],
                logprobs=[0.0],
                token_versions=[version],
            )
            for s in range(config.group_size)
        ]


def _producer(rollouts, *, k=0, wait=True, queue_groups=2, per_step=2, first_step=0):
    def plan(step):
        return PlannedStep([Task("e", 100 * step + i) for i in range(per_step)], RolloutConfig(group_size=2))

    return GroupProducer(
        rollouts.run,
        plan,
        version=lambda: rollouts.version,
        groups_per_step=per_step,
        max_staleness=k,
        wait_for_learner=wait,
        queue_groups=queue_groups,
        first_step=first_step,
    )


def test_k0_starts_a_step_only_once_its_weights_arrived():
    rollouts = FakeRollouts()
    producer = _producer(rollouts)
    producer.start()
    try:
        groups = [producer.take(timeout=10) for _ in range(2)]
        assert sorted((g.step, g.index) for g in groups) == [(0, 0), (0, 1)]
        assert [len(g.trajectories) for g in groups] == [2, 2]
        with pytest.raises(TimeoutError):
            producer.take(timeout=0.3)  # step 1 waits for version 1
        assert rollouts.started == [0, 1]
        rollouts.version = 1
        producer.wake()
        groups = [producer.take(timeout=10) for _ in range(2)]
        assert sorted(g.trajectories[0].seed for g in groups) == [100, 101]
        assert all(g.min_version == 1 for g in groups)
    finally:
        producer.close()


def test_k1_runs_one_step_ahead_and_drops_free_their_slots():
    rollouts = FakeRollouts()
    producer = _producer(rollouts, k=1, queue_groups=8)
    producer.start()
    try:
        groups = [producer.take(timeout=10) for _ in range(4)]
        assert {g.step for g in groups} == {0, 1} and all(g.started_version == 0 for g in groups)
        with pytest.raises(TimeoutError):
            producer.take(timeout=0.3)
        producer.release(2)  # the learner dropped two (or wants two more): they may start at this version
        assert {producer.take(timeout=10).step for _ in range(2)} == {2}
    finally:
        producer.close()


def test_the_queue_bounds_what_a_producer_that_never_waits_holds():
    rollouts = FakeRollouts()
    producer = _producer(rollouts, wait=False, queue_groups=3, per_step=2)
    producer.start()
    try:
        time.sleep(0.5)  # nobody takes: the producer fills the queue, then holds what is done
        assert len(rollouts.started) == 3 + 2
        producer.take(timeout=10)
        time.sleep(0.3)
        assert len(rollouts.started) == 3 + 2 + 1
    finally:
        producer.close()


def test_a_resumed_producer_plans_from_its_step():
    rollouts = FakeRollouts()
    rollouts.version = 5
    producer = _producer(rollouts, first_step=5)
    producer.start()
    try:
        assert sorted(producer.take(timeout=10).trajectories[0].seed for _ in range(2)) == [500, 501]
    finally:
        producer.close()


def test_a_failing_producer_fails_the_learner_loudly():
    producer = _producer(FakeRollouts(fail_on=1))
    producer.start()
    try:
        with pytest.raises(ProducerStopped, match="the producer's own bug"):
            for _ in range(3):
                producer.take(timeout=10)
        with pytest.raises(ProducerStopped):
            producer.take(timeout=10)
    finally:
        producer.close()


def test_close_cancels_the_groups_in_flight():
    rollouts = FakeRollouts(delay_s=60)
    producer = _producer(rollouts)
    producer.start()
    start = time.perf_counter()
    producer.close()
    assert time.perf_counter() - start < 10
    assert not producer._thread.is_alive()
