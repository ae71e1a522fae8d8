"""Hand-computed checks of group filters and overlong shaping (docs/algorithms.md §2.2, §2.4, §9.2)."""

from __future__ import annotations

import pytest
import torch

from palaestra.rollout.trajectory import Trajectory, Turn
from palaestra.trainers.core.filters import (
    group_returns,
    keep_informative_groups,
    overlong_mask,
    soft_overlong_penalty,
    starpo_s_filter,
    truncated_replies,
    zero_variance_groups,
)


def _traj(group: int, rewards: list[float], finish: str = "stop") -> Trajectory:
    turns = [Turn("a", "o", r, False, False, {}, finish_reason=finish) for r in rewards]
    return Trajectory(env_id="palaestra/Math-Arith-v0", seed=group, group_index=group, turns=turns)


# ---------------------------------------------------------------------------------------------------------
# DAPO dynamic sampling
# ---------------------------------------------------------------------------------------------------------
def test_zero_variance_groups_tensor():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # all correct -> drop; mixed -> keep; all wrong -> drop
    assert zero_variance_groups(rewards).tolist() == [True, False, True]
    assert keep_informative_groups(rewards) == [1]


def test_zero_variance_groups_ragged():
    groups = [[1, 1, 1], [0.0, 1.0], [0.5], [2.0, 2]]  # a singleton has no variance either
    assert zero_variance_groups(groups).tolist() == [True, False, True, True]
    assert keep_informative_groups(groups) == [1]


def test_group_returns_from_trajectories():
    trajs = [_traj(3, [0.5, 0.5]), _traj(1, [0.0]), _traj(3, [1.0]), _traj(1, [0.0])]
    groups = group_returns(trajs)
    assert groups == {3: [1.0, 1.0], 1: [0.0, 0.0]}
    assert list(groups) == [3, 1]  # order of first appearance
    assert keep_informative_groups(list(groups.values())) == []


# ---------------------------------------------------------------------------------------------------------
# StarPO-S
# ---------------------------------------------------------------------------------------------------------
# unbiased std of each group of 4:
#   g0 [0,0,0,0] 0 | g1 [0,0,0,1] mean .25, var (3*.0625 + .5625)/3 = .25 -> .5 | g2 [0,0,1,1] var 1/3 -> .577
#   g3 [1,1,1,1] 0 | g4 [0,1,0,1] .577 (ties g2) | g5 [0,0,0,2] mean .5, var (3*.25 + 2.25)/3 = 1 -> 1.0
#   g6 [1,1,1,0] .5 (ties g1) | g7 [5,5,5,5] 0
GROUPS8 = [
    [0, 0, 0, 0],
    [0, 0, 0, 1],
    [0, 0, 1, 1],
    [1, 1, 1, 1],
    [0, 1, 0, 1],
    [0, 0, 0, 2],
    [1, 1, 1, 0],
    [5, 5, 5, 5],
]


def test_starpo_s_keeps_top_quarter_by_std():
    # k = int(0.25 * 8) = 2: g5 (1.0), then the tie g2 / g4 (.577) goes to the lower index, g2
    assert starpo_s_filter(torch.tensor(GROUPS8, dtype=torch.float32)).tolist() == [2, 5]
    # k = 4: g5, g2, g4, then the tie g1 / g6 (.5) -> g1; returned in ascending order
    assert starpo_s_filter(GROUPS8, keep_ratio=0.5).tolist() == [1, 2, 4, 5]
    assert starpo_s_filter(GROUPS8, keep_ratio=1.0).tolist() == list(range(8))


def test_starpo_s_keeps_at_least_one_group():
    # int(0.25 * 3) = 0 in RAGEN; we keep the most uncertain group
    assert starpo_s_filter([[0, 0], [0, 1], [1, 1]], keep_ratio=0.25).tolist() == [1]


def test_starpo_s_ragged_groups():
    # a group left with one sample counts as std 0; [0, 3] has std 2.12, [1, 1, 2] std .577
    assert starpo_s_filter([[1.0], [1, 1, 2], [0, 3]], keep_ratio=0.34).tolist() == [2]
    assert starpo_s_filter([[1.0], [1, 1, 2], [0, 3]], keep_ratio=0.67).tolist() == [1, 2]


def test_starpo_s_rejects_bad_input():
    with pytest.raises(ValueError, match="keep_ratio"):
        starpo_s_filter(GROUPS8, keep_ratio=0.0)
    with pytest.raises(ValueError, match="group_size"):
        starpo_s_filter([[1.0], [0.0]])


# ---------------------------------------------------------------------------------------------------------
# DAPO overlong shaping
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (0, 0.0),
        (16, 0.0),  # |y| = L_max - L_cache: last unpenalised length
        (17, -0.25),  # (16 - 17) / 4
        (18, -0.5),
        (19, -0.75),
        (20, -1.0),  # |y| = L_max: (16 - 20) / 4
        (21, -1.0),  # beyond L_max
        (100, -1.0),
    ],
)
def test_soft_overlong_penalty_boundaries(length, expected):
    value = soft_overlong_penalty(length, max_len=20, cache_len=4)
    assert isinstance(value, float)
    assert value == pytest.approx(expected)


def test_soft_overlong_penalty_dapo_defaults_and_tensor():
    lengths = torch.tensor([16384, 16385, 18432, 20480, 20481])
    expected = [0.0, -1 / 4096, -0.5, -1.0, -1.0]  # (16384 - |y|) / 4096 clamped to [-1, 0]
    assert soft_overlong_penalty(lengths, 20480, 4096).tolist() == pytest.approx(expected)
    assert [soft_overlong_penalty(int(n), 20480, 4096) for n in lengths] == pytest.approx(expected)
    with pytest.raises(ValueError, match="cache_len"):
        soft_overlong_penalty(10, max_len=4, cache_len=8)


def test_overlong_mask_zeroes_truncated_samples():
    trajs = [_traj(0, [1.0]), _traj(0, [0.0], finish="length"), _traj(1, [1.0])]
    truncated = truncated_replies(trajs)
    assert truncated == [False, True, False]
    mask = torch.tensor([[0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=torch.float32)
    assert overlong_mask(mask, truncated).tolist() == [[0, 1, 1], [0, 0, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match="flags"):
        overlong_mask(mask, [True])
