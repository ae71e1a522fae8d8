"""Group-level sampling filters and length shaping (docs/algorithms.md §2.2, §2.4, §9.2, Appendix A).

* DAPO dynamic sampling (§2.2 item 3, §2.4): drop groups whose rewards are all equal; their
  group-relative advantages are 0, so they only dilute the batch.
* StarPO-S uncertainty filtering (§9.2): keep the fraction of groups with the largest reward std.
* DAPO overlong shaping (§2.2 item 5): a soft length penalty added to the reward, or masking the loss of
  truncated samples.

Groups are given as rewards per group: a (G, N) tensor, or a sequence of per-group reward lists (groups
may differ in size); `group_returns` builds the latter from trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, overload

import torch

if TYPE_CHECKING:
    from palaestra.rollout.trajectory import Trajectory

__all__ = [
    "group_returns",
    "keep_informative_groups",
    "overlong_mask",
    "soft_overlong_penalty",
    "starpo_s_filter",
    "truncated_replies",
    "zero_variance_groups",
]

GroupRewards = torch.Tensor | Sequence[Sequence[float]]


def group_returns(trajectories: Sequence[Trajectory]) -> dict[int, list[float]]:
    """Episode returns (`traj.reward`) by `group_index`, groups in order of first appearance."""
    groups: dict[int, list[float]] = {}
    for traj in trajectories:
        groups.setdefault(traj.group_index, []).append(traj.reward)
    return groups


# -- DAPO dynamic sampling -----------------------------------------------------------------------------
def zero_variance_groups(rewards_by_group: GroupRewards) -> torch.Tensor:
    """Which groups have all-equal rewards (docs/algorithms.md §2.2 item 3; Appendix A `keep_group`).

    For binary rewards these are the groups with #correct = 0 or N. A group of one sample counts as
    zero-variance (it has no group baseline to learn from).

    Args:
        rewards_by_group: (G, N) tensor, or G sequences of rewards.

    Returns:
        (G,) bool tensor, True for groups to drop.
    """
    if isinstance(rewards_by_group, torch.Tensor):
        if rewards_by_group.dim() != 2:
            raise ValueError(f"expected (G, N) rewards, got shape {tuple(rewards_by_group.shape)}")
        return (rewards_by_group == rewards_by_group[:, :1]).all(dim=1)
    return torch.tensor([len(set(map(float, r))) <= 1 for r in rewards_by_group], dtype=torch.bool)


def keep_informative_groups(rewards_by_group: GroupRewards) -> list[int]:
    """Indices of the groups DAPO dynamic sampling keeps: those whose rewards are not all equal (§2.2)."""
    return (~zero_variance_groups(rewards_by_group)).nonzero().flatten().tolist()


# -- StarPO-S ------------------------------------------------------------------------------------------
def _group_stds(group_rewards: GroupRewards) -> torch.Tensor:
    """(G,) unbiased std per group; ragged groups allowed, a group of one sample gets 0."""
    if isinstance(group_rewards, torch.Tensor):
        if group_rewards.dim() != 2:
            raise ValueError(f"expected (G, N) rewards, got shape {tuple(group_rewards.shape)}")
        groups = list(group_rewards.double())
    else:
        groups = [torch.as_tensor(r, dtype=torch.float64) for r in group_rewards]
    if not groups or max(g.numel() for g in groups) < 2:
        raise ValueError(
            f"StarPO-S needs groups of >= 2 samples, got sizes {[g.numel() for g in groups]}; "
            "set rollout.group_size >= 2"
        )
    return torch.stack([g.std() if g.numel() > 1 else g.new_zeros(()) for g in groups])


def starpo_s_filter(group_rewards: GroupRewards, keep_ratio: float = 0.25) -> torch.Tensor:
    """Groups kept by StarPO-S uncertainty filtering: the top `keep_ratio` by reward std (§9.2).

    The std is the unbiased in-group std of the *raw* (pre-normalisation) rewards, as RAGEN
    `_filter_rollout` (`rollout_filter_type="std"`). Rounding: k = max(1, floor(keep_ratio · G)); RAGEN
    uses `int(keep_ratio · G)`, which keeps nothing when keep_ratio · G < 1 — we always keep at least one
    group. Ties in std go to the lower group index (stable sort), so the choice is deterministic. A group
    left with one sample (e.g. its other episodes failed) counts as std 0.

    Args:
        group_rewards: (G, N) rewards, or G sequences of rewards (sizes may differ).
        keep_ratio: fraction of groups to keep, in (0, 1] (RAGEN default 0.25).

    Returns:
        (k,) long tensor of kept group indices, ascending.
    """
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio={keep_ratio}, expected 0 < keep_ratio <= 1 (StarPO-S: 0.25)")
    stds = _group_stds(group_rewards)  # (G,)
    k = max(1, int(keep_ratio * stds.numel()))
    order = torch.sort(stds, descending=True, stable=True).indices  # (G,)
    return order[:k].sort().values


# -- DAPO overlong shaping -----------------------------------------------------------------------------
@overload
def soft_overlong_penalty(length: int, max_len: int, cache_len: int) -> float: ...
@overload
def soft_overlong_penalty(length: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor: ...
def soft_overlong_penalty(length: int | torch.Tensor, max_len: int, cache_len: int) -> float | torch.Tensor:
    """DAPO soft overlong punishment R_length, added to the task reward (docs/algorithms.md §2.2 item 5).

        R_length = 0                                     if |y| ≤ L_max − L_cache
                 = ((L_max − L_cache) − |y|) / L_cache   if L_max − L_cache < |y| ≤ L_max
                 = −1                                    if |y| > L_max

    i.e. clamp(((L_max − L_cache) − |y|) / L_cache, −1, 0): linear from 0 to −1 across the cache band.

    Args:
        length: generated length |y| (int), or a tensor of lengths.
        max_len: L_max, the generation budget (DAPO: 20480).
        cache_len: L_cache, the width of the penalised band (DAPO: 4096).

    Returns:
        The penalty in [−1, 0], a float for an int length, else a tensor of the lengths' shape.
    """
    if not 0 < cache_len <= max_len:
        raise ValueError(f"cache_len={cache_len}, max_len={max_len}: expected 0 < cache_len <= max_len")
    threshold = max_len - cache_len
    if isinstance(length, torch.Tensor):
        return ((threshold - length.double()) / cache_len).clamp(-1.0, 0.0).to(torch.get_default_dtype())
    return min(0.0, max(-1.0, (threshold - length) / cache_len))


def truncated_replies(trajectories: Sequence[Trajectory]) -> list[bool]:
    """Per trajectory: did any reply hit the generation limit (`finish_reason == "length"`)?

    In a multi-turn episode, a reply cut at `max_new_tokens` is the analogue of DAPO's overlong sample.
    """
    return [any(turn.finish_reason == "length" for turn in traj.turns) for traj in trajectories]


def overlong_mask(loss_mask: torch.Tensor, truncated: torch.Tensor | Sequence[bool]) -> torch.Tensor:
    """DAPO overlong filtering: the loss mask with truncated samples zeroed (§2.2 item 5a).

    Args:
        loss_mask: (B, T) loss mask.
        truncated: (B,) True for samples that were cut by the length limit.

    Returns:
        (B, T) loss mask, all zero on truncated rows.
    """
    truncated = torch.as_tensor(truncated, dtype=torch.bool, device=loss_mask.device)
    if truncated.shape != loss_mask.shape[:1]:
        raise ValueError(f"{tuple(truncated.shape)} flags for a loss mask of shape {tuple(loss_mask.shape)}")
    return loss_mask * (~truncated)[:, None].to(loss_mask.dtype)  # (B, T)
