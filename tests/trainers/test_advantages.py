"""Hand-computed checks of group-relative advantages (docs/algorithms.md §1.3, §2.4, Appendix A)."""

from __future__ import annotations

import pytest
import torch

from palaestra.rollout.trajectory import Trajectory, Turn
from palaestra.trainers.core.advantages import (
    AdvantageEstimator,
    GroupRelativeEstimator,
    broadcast_to_tokens,
    discounted_returns,
    group_advantages,
    token_advantages,
)

EPS = 1e-6

# Three groups, interleaved:
#   "a": [1, 0, 0, 0]  mean 0.25, deviations [0.75, -0.25, -0.25, -0.25]
#        unbiased var = (0.5625 + 3 * 0.0625) / (4 - 1) = 0.75 / 3 = 0.25 -> std 0.5
#        (population std would be sqrt(0.1875) = 0.433 -> 1.732, not 1.5)
#   "b": [2, 2]        all equal -> 0
#   "c": [5]           singleton
SCORES = [1.0, 2.0, 0.0, 5.0, 0.0, 2.0, 0.0]
GROUPS = ["a", "b", "a", "c", "a", "b", "a"]


def close(actual, expected, atol: float = 1e-6) -> None:
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=torch.float64),
        torch.as_tensor(expected, dtype=torch.float64),
        atol=atol,
        rtol=0,
    )


def test_group_advantages_with_unbiased_std():
    adv = group_advantages(torch.tensor(SCORES, dtype=torch.float64), GROUPS)
    assert adv.dtype == torch.float64
    hi, lo = 0.75 / (0.5 + EPS), -0.25 / (0.5 + EPS)  # 1.499997, -0.499999
    close(adv, [hi, 0.0, lo, 5.0, lo, 0.0, lo], atol=1e-9)
    assert adv[0] != pytest.approx(0.75 / 0.1875**0.5, abs=1e-3)  # not the population std


def test_group_advantages_without_std():
    adv = group_advantages(SCORES, GROUPS, scale_by_std=False)  # Dr. GRPO: centre only
    close(adv, [0.75, 0.0, -0.25, 5.0, -0.25, 0.0, -0.25])


def test_singleton_conventions():
    close(group_advantages(SCORES, GROUPS, singleton="raw")[3], 5.0)  # verl episode level
    close(group_advantages(SCORES, GROUPS, singleton="zero")[3], 0.0)  # GiGPO step level
    close(group_advantages([3.0], [0], scale_by_std=False), [3.0])
    with pytest.raises(ValueError, match="singleton"):
        group_advantages(SCORES, GROUPS, singleton="keep")  # type: ignore[arg-type]


def test_all_equal_groups_are_exactly_zero():
    # 0.1 is not representable: the float mean leaves a residue that eps would blow up to ~1e-2
    adv = group_advantages([0.1, 0.1, 0.1, 0.7, 0.7], [0, 0, 0, 1, 1])
    assert adv.tolist() == [0.0] * 5


def test_matches_torch_std_per_group_with_tensor_ids():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(40, generator=gen, dtype=torch.float64)
    ids = torch.randint(0, 6, (40,), generator=gen) * 7  # sparse, unordered ids
    adv = group_advantages(scores, ids, eps=1e-8)
    for g in ids.unique():
        sel = ids == g
        if sel.sum() > 1:
            v = scores[sel]
            close(adv[sel], (v - v.mean()) / (v.std() + 1e-8), atol=1e-10)


def test_group_advantages_checks_lengths():
    with pytest.raises(ValueError, match="group ids"):
        group_advantages([1.0, 2.0], [0])


def test_broadcast_to_tokens():
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 0, 0]])
    close(
        broadcast_to_tokens(torch.tensor([0.5, -2.0]), mask), [[0.0, 0.5, 0.5, 0.0], [-2.0, -2.0, 0.0, 0.0]]
    )
    with pytest.raises(ValueError, match="shape"):
        broadcast_to_tokens(torch.tensor([0.5]), mask)


def test_discounted_returns():
    # R_t = r_t + gamma R_{t+1}:  [0, 0, 1], gamma 0.5 -> [0.25, 0.5, 1]
    assert discounted_returns([0.0, 0.0, 1.0], 0.5) == [0.25, 0.5, 1.0]
    # [1, 2, 3], gamma 0.9: R2 = 3; R1 = 2 + 0.9 * 3 = 4.7; R0 = 1 + 0.9 * 4.7 = 5.23
    assert discounted_returns([1.0, 2.0, 3.0], 0.9) == pytest.approx([5.23, 4.7, 3.0])
    assert discounted_returns([1.0, 2.0, 3.0], 1.0) == [6.0, 5.0, 3.0]
    assert discounted_returns([], 0.9) == []
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns([1.0], 1.5)


# ---------------------------------------------------------------------------------------------------------
# trajectories (Layout A, multi-turn)
# ---------------------------------------------------------------------------------------------------------
def _turn(reward: float, span: tuple[int, int] = (0, 0)) -> Turn:
    return Turn(
        action="a",
        observation="o",
        reward=reward,
        terminated=False,
        truncated=False,
        info={},
        token_span=span,
    )


def _trajectory(group: int, sample: int, rewards: list[float]) -> Trajectory:
    """Ten tokens: prompt [0, 3), reply 1 [3, 5), env message [5, 7), reply 2 [7, 10) (one turn per reward)."""
    spans = [(3, 5), (7, 10)][: len(rewards)]
    mask = [0] * 10
    for start, end in spans:
        mask[start:end] = [1] * (end - start)
    return Trajectory(
        env_id="palaestra/Math-Arith-v0",
        seed=group,
        group_index=group,
        sample_index=sample,
        turns=[_turn(r, s) for r, s in zip(rewards, spans, strict=True)],
        token_ids=list(range(10)),
        loss_mask=mask,
        logprobs=[-0.1 * m for m in mask],
    )


def _episodes() -> list[Trajectory]:
    # group 0: returns 0.5 + 0.5 = 1 and 0; group 1: returns 3 and 1 (interleaved)
    return [
        _trajectory(0, 0, [0.5, 0.5]),
        _trajectory(1, 0, [3.0]),
        _trajectory(0, 1, [0.0, 0.0]),
        _trajectory(1, 1, [1.0]),
    ]


def test_group_relative_estimator_uses_episode_returns_and_groups():
    estimator: AdvantageEstimator = GroupRelativeEstimator()
    adv = estimator(_episodes())
    # group 0: mean 0.5, deviations +-0.5, unbiased var (0.25 + 0.25) / 1 = 0.5, std 0.70711 -> +-0.70711
    # group 1: mean 2,   deviations +-1,   unbiased var (1 + 1) / 1 = 2,        std 1.41421 -> +-0.70711
    a = 0.5 / (0.5**0.5 + EPS)
    close(adv, [a, a, -a, -a])
    close(GroupRelativeEstimator(scale_by_std=False)(_episodes()), [0.5, 1.0, -0.5, -1.0])


def test_multi_turn_broadcast_covers_every_assistant_token():
    episodes = _episodes()
    adv = GroupRelativeEstimator()(episodes)
    per_token = token_advantages(episodes, adv)
    a = 0.5 / (0.5**0.5 + EPS)
    # episode 0: replies at [3, 5) and [7, 10) both get A; prompt and env tokens get 0
    close(per_token[0], [0, 0, 0, a, a, 0, 0, a, a, a])
    close(per_token[2], [0, 0, 0, -a, -a, 0, 0, -a, -a, -a])
    for traj, values in zip(episodes, per_token, strict=True):
        for turn in traj.turns:
            start, end = turn.token_span
            assert all(v != 0 for v in values[start:end])
    # per-token advantages pass through, masked
    explicit = token_advantages(episodes[:1], [[1.0] * 10])
    assert explicit == [[float(m) for m in episodes[0].loss_mask]]
    with pytest.raises(ValueError, match="tokens"):
        token_advantages(episodes[:1], [[1.0] * 3])
