"""GiGPO: group-in-group policy optimisation, step-level credit from anchor states (ALGORITHMS.md §7).

Paper: Feng, Xue, Liu, An, "Group-in-Group Policy Optimization for LLM Agent Training" (arXiv
2505.10978 v3, NeurIPS 2025); reference code verl-agent `gigpo/core_gigpo.py`.

Objective. For a group of N episodes of one task (same seed), with step rewards r_t and the anchor
state s_t of each step (the raw env observation the action answered):

    A^E(τ_i)  = (R(τ_i) − mean_j R(τ_j)) / F                     R(τ) = Σ_t r_t          (Eq. 3)
    R_t^(i)   = Σ_{k ≥ t} γ^{k−t} r_k^(i)                                                    (Eq. 5)
    A^S(a_t)  = (R_t − mean_{G^S(s_t)} R) / F,   G^S(s) = every step of the group in state s  (Eqs. 4-7)
    A(a_t)    = A^E(τ_i) + ω · A^S(a_t)                                                      (Eq. 8)

F = group std (`scale_by_std`, "w/ std") or 1 (Dr. GRPO style, "w/o std"), the same for both terms as
in the code. A(a_t) goes on every token of reply t; the loss is the shared clipped surrogate of
`trainers/core` (GRPO's `loss`), token-mean by default as verl-agent.

Choices (§7.8, §15 item 8), each a config field:
    * Layout A (one row per episode, full history) instead of verl-agent's per-step rows; the anchor is
      still the raw observation without history, so equal states group across histories and time steps.
    * A^E statistics over trajectories (paper Eq. 3; `episode_stats="trajectories"`) or over step rows
      as verl-agent's `compute_mean_std_cross_steps=True` (`"steps"`).
    * Singleton anchor groups get A^S = 0 (code); singleton task groups keep their raw return.
    * Exact anchors by default; `similarity` switches to difflib clustering (code: 0.95; search-QA 0.9).
    * `invalid_penalty` (code: 0.1; default 0 here, since palaestra envs price format errors in their own
      reward) is subtracted, per step with a format error, from both the episode score and the step
      return, as the code does.

Departures from `trainers/core`: per-token advantages (one value per turn) instead of one per episode.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import torch
from pydantic import Field

from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.advantages import (
    anchor_groups,
    discounted_returns,
    group_advantages,
    turn_token_advantages,
)
from palaestra.trainers.grpo import GRPOConfig, GRPOTrainer

__all__ = ["GiGPOConfig", "GiGPOTrainer", "gigpo_advantages", "turn_anchors"]


class GiGPOConfig(GRPOConfig):
    """GiGPO options, on top of GRPO's loss and sampling options (paper defaults in configs/gigpo.yaml)."""

    name: Literal["gigpo"] = "gigpo"  # type: ignore[assignment]
    clip_high: float = Field(0.2, gt=0, description="Upper clip (GiGPO: symmetric 0.2).")
    gamma: float = Field(0.95, ge=0, le=1, description="Discount of the step returns R_t (paper 0.95).")
    step_weight: float = Field(1.0, ge=0, description="ω, weight of the step advantage A^S (paper 1).")
    similarity: float | None = Field(
        None, gt=0, le=1, description="None: exact anchor states; else difflib ratio to share a group."
    )
    episode_stats: Literal["trajectories", "steps"] = Field(
        "trajectories",
        description="A^E statistics over trajectories (paper) or over step rows (verl-agent default).",
    )
    invalid_penalty: float = Field(
        0.0,
        ge=0,
        description="Subtracted per format-error step from episode score and step return (code: 0.1).",
    )


def gigpo_advantages(
    step_rewards: Sequence[Sequence[float]],
    anchors: Sequence[Sequence[str]],
    groups: Sequence[Hashable],
    *,
    gamma: float = 0.95,
    step_weight: float = 1.0,
    scale_by_std: bool = False,
    eps: float = 1e-6,
    similarity: float | None = None,
    episode_stats: Literal["trajectories", "steps"] = "trajectories",
    invalid: Sequence[Sequence[bool]] | None = None,
    invalid_penalty: float = 0.0,
) -> list[list[float]]:
    """GiGPO advantages of every step of every episode (module docstring, Eqs. 3-8).

    Args:
        step_rewards: per episode, its step rewards r_0 .. r_{T−1}.
        anchors: per episode, the anchor state of each step (same lengths as `step_rewards`).
        groups: per episode, its task group (episodes of one task share it).
        gamma: discount of the step returns.
        step_weight: ω.
        scale_by_std: divide by the group std (F = std) or not (F = 1).
        eps: added to the std.
        similarity: None for exact anchors, else the difflib threshold.
        episode_stats: A^E over "trajectories" or over "steps" (rows).
        invalid: per episode, whether each step was a format error (None: none was).
        invalid_penalty: subtracted per invalid step (see the module docstring).

    Returns:
        Per episode, A(a_t) for each step t.
    """
    n = len(step_rewards)
    if not (len(anchors) == len(groups) == n):
        raise ValueError(f"{n} episodes of rewards, {len(anchors)} of anchors, {len(groups)} group ids")
    invalid = invalid if invalid is not None else [[False] * len(r) for r in step_rewards]
    flat_group, flat_anchor, flat_return, flat_episode, owner = [], [], [], [], []
    episode_scores = []
    for i, (rewards, states, bad) in enumerate(zip(step_rewards, anchors, invalid, strict=True)):
        if not (len(rewards) == len(states) == len(bad)):
            raise ValueError(f"episode {i}: {len(rewards)} rewards, {len(states)} anchors, {len(bad)} flags")
        total = float(sum(rewards))
        episode_scores.append(total - invalid_penalty * sum(bad))
        for t, ret in enumerate(discounted_returns(rewards, gamma)):
            flat_group.append(groups[i])
            flat_anchor.append(states[t])
            flat_return.append(ret - invalid_penalty * bad[t])
            flat_episode.append(total - invalid_penalty * bad[t])
            owner.append(i)
    norm = {"scale_by_std": scale_by_std, "eps": eps}
    if episode_stats == "trajectories":
        per_episode = group_advantages(episode_scores, list(groups), **norm, singleton="raw")
        a_episode = per_episode[torch.as_tensor(owner, dtype=torch.long)] if owner else per_episode[:0]
    else:
        a_episode = group_advantages(flat_episode, flat_group, **norm, singleton="raw")
    cluster = anchor_groups(flat_anchor, flat_group, similarity=similarity)
    a_step = group_advantages(flat_return, cluster, **norm, singleton="zero")
    combined = (a_episode + step_weight * a_step).tolist()
    out: list[list[float]] = [[] for _ in range(n)]
    for i, value in zip(owner, combined, strict=True):
        out[i].append(value)
    return out


def turn_anchors(trajectory: Trajectory) -> list[str]:
    """The anchor state of each turn: the env observation the reply answered (no history, no system)."""
    first = next((m for m in trajectory.messages if m.get("role") != "system"), None)
    initial = first.get("content", "") if first is not None else ""
    if not isinstance(initial, str):  # multimodal parts: keep the text parts
        initial = " ".join(p.get("text", "") for p in initial if isinstance(p, dict))
    observations = [initial] + [turn.observation for turn in trajectory.turns[:-1]]
    return observations[: len(trajectory.turns)]


class GiGPOTrainer(GRPOTrainer):
    """GRPO's sampling and loss with GiGPO's step-level advantages (see the module docstring)."""

    config_class = GiGPOConfig

    def advantages(self, trajectories: list[Trajectory]) -> list[float | list[float]]:
        algo: GiGPOConfig = self.config.algorithm
        per_turn = gigpo_advantages(
            [t.step_rewards for t in trajectories],
            [turn_anchors(t) for t in trajectories],
            [t.group_index for t in trajectories],
            gamma=algo.gamma,
            step_weight=algo.step_weight,
            scale_by_std=algo.scale_by_std,
            eps=algo.adv_eps,
            similarity=algo.similarity,
            episode_stats=algo.episode_stats,
            invalid=[[u.format_error is not None for u in t.turns] for t in trajectories],
            invalid_penalty=algo.invalid_penalty,
        )
        return [turn_token_advantages(t, adv) for t, adv in zip(trajectories, per_turn, strict=True)]
