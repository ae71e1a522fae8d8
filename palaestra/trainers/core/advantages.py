"""Advantage estimation shared by the critic-free trainers (docs/algorithms.md §1.3, §2.4, Appendix A).

The primitive is the group-relative advantage of §1.3: each score is compared with the other samples of
the same task (its *group*),

    A_i = (R_i − mean_g R) / (std_g R + eps)        scale_by_std=True  (GRPO, DAPO)
    A_i =  R_i − mean_g R                           scale_by_std=False (Dr. GRPO)

with the *unbiased* std (n − 1), as `torch.std` in every verl-derived code base (§2.6, §15 item 2).

Multi-turn (Layout A, §1.2 / §2.4): the episode return R(τ) gives one scalar per trajectory, broadcast to
every masked (assistant) token of every turn of the episode.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import torch

if TYPE_CHECKING:
    from palaestra.rollout.trajectory import Trajectory

__all__ = [
    "AdvantageEstimator",
    "GroupRelativeEstimator",
    "anchor_groups",
    "broadcast_to_tokens",
    "discounted_returns",
    "group_advantages",
    "token_advantages",
    "truncated_discounted_returns",
    "turn_token_advantages",
]

Singleton = Literal["raw", "zero"]


def _group_codes(group_ids: torch.Tensor | Sequence[Hashable]) -> torch.Tensor:
    """Dense codes 0..G-1 (in order of first appearance for sequences) for arbitrary group ids."""
    if isinstance(group_ids, torch.Tensor):
        return torch.unique(group_ids, return_inverse=True)[1].flatten()
    codes: dict[Hashable, int] = {}
    return torch.tensor([codes.setdefault(g, len(codes)) for g in group_ids], dtype=torch.long)


def group_advantages(
    scores: torch.Tensor | Sequence[float],
    group_ids: torch.Tensor | Sequence[Hashable],
    *,
    scale_by_std: bool = True,
    eps: float = 1e-6,
    singleton: Singleton = "raw",
) -> torch.Tensor:
    """Group-relative advantages, one per score (docs/algorithms.md §1.3, Appendix A `group_norm`).

    Conventions (§1.3 edge cases, §15 item 2):
        * std is the unbiased sample std (divides by n − 1), as `torch.std` / verl.
        * all-equal groups (n ≥ 2) get exactly 0 (float residue of the mean is not divided by eps).
        * singleton groups: "raw" gives the raw score (verl episode level: mean := 0, std := 1);
          "zero" gives 0 (verl-agent step level, GiGPO).

    Args:
        scores: (N,) one scalar per sample (e.g. episode return).
        group_ids: (N,) group of each sample (ints, strings, any hashable); groups may interleave.
        scale_by_std: divide by (std + eps) (GRPO); False: centre only (Dr. GRPO).
        eps: added to the std (verl 1e-6; understand-r1-zero 1e-8).
        singleton: convention for groups of one sample, "raw" or "zero".

    Returns:
        (N,) advantages, float dtype of `scores` (float32 for non-float input).
    """
    if singleton not in ("raw", "zero"):
        raise ValueError(f"singleton={singleton!r}, expected 'raw' or 'zero'")
    scores = torch.as_tensor(scores)
    if not scores.is_floating_point():
        scores = scores.float()
    scores = scores.flatten()
    codes = _group_codes(group_ids).to(scores.device)
    if codes.numel() != scores.numel():
        raise ValueError(f"{scores.numel()} scores but {codes.numel()} group ids")
    if scores.numel() == 0:
        return scores.clone()
    num_groups = int(codes.max()) + 1
    zeros = scores.new_zeros(num_groups)
    count = zeros.index_add(0, codes, torch.ones_like(scores))  # (G,)
    mean = zeros.index_add(0, codes, scores) / count  # (G,)
    centred = scores - mean[codes]  # (N,)
    var = zeros.index_add(0, codes, centred.square()) / (count - 1).clamp(min=1)  # unbiased, (G,)
    adv = centred / (var.sqrt()[codes] + eps) if scale_by_std else centred
    lo = zeros.scatter_reduce(0, codes, scores, reduce="amin", include_self=False)
    hi = zeros.scatter_reduce(0, codes, scores, reduce="amax", include_self=False)
    adv = torch.where((lo == hi)[codes], torch.zeros_like(adv), adv)
    is_single = (count == 1)[codes]
    return torch.where(is_single, scores if singleton == "raw" else torch.zeros_like(adv), adv)


def broadcast_to_tokens(adv_per_seq: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """One advantage per sequence onto its masked tokens (§1.2: GRPO-style broadcast).

    Args:
        adv_per_seq: (B,) advantages.
        loss_mask: (B, T) 1 on trained tokens.

    Returns:
        (B, T) advantages, 0 where the mask is 0.
    """
    if adv_per_seq.shape != loss_mask.shape[:1]:
        raise ValueError(
            f"adv_per_seq of shape {tuple(adv_per_seq.shape)} for a mask of {tuple(loss_mask.shape)}"
        )
    return adv_per_seq[:, None] * loss_mask.to(adv_per_seq.dtype)  # (B, T)


def discounted_returns(rewards: Sequence[float], gamma: float) -> list[float]:
    """R_t = Σ_{k ≥ t} γ^{k−t} r_k for the steps of one trajectory (docs/algorithms.md §1.1, Appendix A).

    The hook for step-level estimators (GiGPO γ = 0.95, UI-S1 γ = 0.5).

    Args:
        rewards: step rewards r_0 .. r_{T−1} of one trajectory (`Trajectory.step_rewards`).
        gamma: discount in [0, 1].

    Returns:
        Returns R_0 .. R_{T−1}.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma={gamma}, expected 0 <= gamma <= 1")
    returns = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = float(rewards[t]) + gamma * running
        returns[t] = running
    return returns


def truncated_discounted_returns(
    rewards: Sequence[float], matches: Sequence[bool], gamma: float, *, include_mismatch: bool = True
) -> list[float]:
    """UI-S1 future returns that stop at the first divergence from the expert (docs/algorithms.md §4.4, Eq. 9).

    R_t = Σ_{k=t}^{t_end} γ^{k−t} r_k, where t_end is the last step of the matching run that starts at t,
    plus (paper, `include_mismatch=True`) the first mismatching step after it. The reference code
    (`include_mismatch=False`) stops *before* the next mismatching step. Either way a mismatching step's
    own return is its own reward.

    Args:
        rewards: step rewards r_0 .. r_{T−1} of one rollout.
        matches: whether the policy's action matched the expert's at each step.
        gamma: discount in [0, 1] (UI-S1: 0.5).
        include_mismatch: paper semantics (True) or code semantics (False).

    Returns:
        Returns R_0 .. R_{T−1}.
    """
    if len(rewards) != len(matches):
        raise ValueError(f"{len(rewards)} rewards but {len(matches)} match flags")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma={gamma}, expected 0 <= gamma <= 1")
    returns = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        if matches[t]:
            running = float(rewards[t]) + gamma * running
        else:
            running = float(rewards[t]) if include_mismatch else 0.0
            returns[t] = float(rewards[t])
            continue
        returns[t] = running
    return returns


def anchor_groups(
    anchors: Sequence[str], group_ids: Sequence[Hashable], *, similarity: float | None = None
) -> list[int]:
    """GiGPO anchor-state groups: steps of one task group that saw the same state (docs/algorithms.md §7.3).

    Within each task group, steps are clustered by their anchor (the raw environment observation before
    the action): exact equality, or with `similarity`, greedily by `difflib.SequenceMatcher` ratio ≥
    `similarity` against each cluster's first member (verl-agent `enable_similarity`). Steps of
    different task groups never share a cluster.

    Args:
        anchors: (N,) anchor state of each step.
        group_ids: (N,) task group of each step.
        similarity: None for exact matching, else a threshold in (0, 1] (verl-agent 0.95).

    Returns:
        (N,) cluster ids 0..C−1, in order of first appearance.
    """
    if len(anchors) != len(group_ids):
        raise ValueError(f"{len(anchors)} anchors but {len(group_ids)} group ids")
    if similarity is not None and not 0.0 < similarity <= 1.0:
        raise ValueError(f"similarity={similarity}, expected a ratio in (0, 1] or None for exact anchors")
    exact: dict[tuple[Hashable, str], int] = {}
    reps: dict[Hashable, list[tuple[str, int]]] = {}
    out: list[int] = []
    for anchor, group in zip(anchors, group_ids, strict=True):
        if similarity is None:
            out.append(exact.setdefault((group, anchor), len(exact)))
            continue
        clusters = reps.setdefault(group, [])
        found = next(
            (
                cid
                for rep, cid in clusters
                if rep == anchor or difflib.SequenceMatcher(None, anchor, rep).ratio() >= similarity
            ),
            None,
        )
        if found is None:
            found = 1 + max(out, default=-1)
            clusters.append((anchor, found))
        out.append(found)
    return out


def turn_token_advantages(trajectory: Trajectory, turn_adv: Sequence[float]) -> list[float]:
    """Per-token advantages of a Layout A episode from one advantage per turn (step-level methods).

    Turn t's value goes on the tokens of its reply (`Turn.token_span`); every other token gets 0.

    Args:
        trajectory: a token-level episode.
        turn_adv: one advantage per turn.

    Returns:
        A list aligned with `trajectory.token_ids`.
    """
    if len(turn_adv) != len(trajectory.turns):
        raise ValueError(f"{len(turn_adv)} turn advantages for {len(trajectory.turns)} turns")
    out = [0.0] * len(trajectory.token_ids)
    for turn, adv in zip(trajectory.turns, turn_adv, strict=True):
        start, end = turn.token_span
        for k in range(start, end):
            out[k] = float(adv) * trajectory.loss_mask[k]
    return out


class AdvantageEstimator(Protocol):
    """Trajectories of one step -> advantages, aligned with the input list.

    Each entry is one scalar for the trajectory (broadcast over its `loss_mask` by the collator) or one
    value per token of `token_ids` (0 where `loss_mask` is 0).
    """

    def __call__(self, trajectories: Sequence[Trajectory]) -> Sequence[float | Sequence[float]]: ...


@dataclass(frozen=True)
class GroupRelativeEstimator:
    """GRPO advantages of whole episodes (docs/algorithms.md §1.3, §2.4, §2.5 Layout A).

    Scores are episode returns `traj.reward` (sum of step rewards); groups are `traj.group_index` (the
    samples of one task). The collator must therefore see each group's trajectories under one
    `group_index`, and distinct tasks under distinct ones.

    Attributes:
        scale_by_std: divide by the group std (GRPO/DAPO); False for Dr. GRPO.
        eps: added to the std.
        singleton: groups of one sample: "raw" return (verl) or "zero".
    """

    scale_by_std: bool = True
    eps: float = 1e-6
    singleton: Singleton = "raw"

    def __call__(self, trajectories: Sequence[Trajectory]) -> list[float]:
        """One advantage per trajectory, for every masked token of the episode (all assistant turns)."""
        adv = group_advantages(
            [t.reward for t in trajectories],
            [t.group_index for t in trajectories],
            scale_by_std=self.scale_by_std,
            eps=self.eps,
            singleton=self.singleton,
        )
        return adv.tolist()


def token_advantages(
    trajectories: Sequence[Trajectory], advantages: Sequence[float | Sequence[float]]
) -> list[list[float]]:
    """Per-token advantages: a trajectory's scalar on every masked token of all its turns, 0 elsewhere.

    Args:
        trajectories: the episodes (token-level; `loss_mask` set).
        advantages: per trajectory, a scalar or one value per token.

    Returns:
        Per trajectory, a list aligned with `token_ids`.
    """
    if len(trajectories) != len(advantages):
        raise ValueError(f"{len(trajectories)} trajectories but {len(advantages)} advantages")
    out = []
    for traj, adv in zip(trajectories, advantages, strict=True):
        if isinstance(adv, Sequence):
            if len(adv) != len(traj.loss_mask):
                raise ValueError(f"{len(adv)} token advantages for {len(traj.loss_mask)} tokens")
            out.append([float(a) * m for a, m in zip(adv, traj.loss_mask, strict=True)])
        else:
            out.append([float(adv) * m for m in traj.loss_mask])
    return out
