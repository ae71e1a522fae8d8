"""ARPO replay: all-fail groups get a buffered success, the buffer survives checkpoint and resume."""

from __future__ import annotations

import statistics

import pytest

from palaestra.rollout.trajectory import Trajectory, Turn
from palaestra.trainers.arpo import ReplayBuffer, apply_replay, is_all_fail
from palaestra.trainers.core.advantages import group_advantages


def _traj(seed: int, group: int, sample: int, success: bool) -> Trajectory:
    t = Trajectory(env_id="env", seed=seed, group_index=group, sample_index=sample, success=success)
    t.turns = [Turn("reply", "obs", float(success), True, False, {"n": sample})]
    return t


def _signal(t: Trajectory) -> float:
    return float(t.success)


def test_all_fail_group_gets_the_buffered_success_with_positive_advantage():
    buffer = ReplayBuffer(capacity=8, threshold=0.1)
    earlier = _traj(seed=7, group=3, sample=5, success=True)
    assert buffer.add("env#7", earlier, 1.0)
    group = [_traj(seed=7, group=0, sample=i, success=False) for i in range(8)]
    out, injected = apply_replay(group, buffer, signal=_signal)
    assert injected == 1
    assert out[0].success and out[0].turns[0].info == {"n": 5}  # the stored trajectory, in slot 0
    assert (out[0].group_index, out[0].sample_index) == (0, 0)
    assert out[1:] == group[1:]
    adv = group_advantages([t.reward for t in out], [t.group_index for t in out]).tolist()
    sd = statistics.stdev([1.0] + [0.0] * 7)  # 1 success of 8: mean .125, unbiased std .354
    assert adv[0] == pytest.approx(0.875 / (sd + 1e-6)) and adv[0] == pytest.approx(2.47, abs=0.01)
    assert all(a == pytest.approx(-0.125 / (sd + 1e-6)) for a in adv[1:])
    assert adv[1] == pytest.approx(-0.35, abs=0.01)


def test_no_injection_without_a_success_or_when_the_group_has_one():
    buffer = ReplayBuffer()
    fails = [_traj(1, 0, i, False) for i in range(4)]
    assert apply_replay(fails, buffer, signal=_signal) == (fails, 0)  # nothing buffered for task 1
    mixed = [_traj(1, 0, 0, True)] + [_traj(1, 0, i, False) for i in range(1, 4)]
    out, injected = apply_replay(mixed, buffer, signal=_signal)
    assert injected == 0 and out == mixed
    assert len(buffer.buffers["env#1"]) == 1  # the fresh success was buffered after the check
    out, injected = apply_replay(fails, buffer, signal=_signal)
    assert injected == 1 and out[0].success


def test_buffer_is_fifo_bounded_and_round_trips_through_json(tmp_path):
    import json

    buffer = ReplayBuffer(capacity=2, threshold=0.1, seed=3)
    for i in range(3):
        buffer.add("k", _traj(0, 0, i, True), 1.0)
    assert [t.sample_index for t in buffer.buffers["k"]] == [1, 2]
    assert not buffer.add("k", _traj(0, 0, 9, False), 0.1)  # not above the threshold
    state = json.loads(json.dumps(buffer.state_dict()))
    again = ReplayBuffer()
    again.load_state_dict(state)
    assert again.buffers == buffer.buffers
    assert [again.sample("k").sample_index for _ in range(5)] == [
        buffer.sample("k").sample_index for _ in range(5)
    ]


def test_all_fail_test():
    assert is_all_fail([0, 0, 0]) and not is_all_fail([0, 1, 0]) and not is_all_fail([])
