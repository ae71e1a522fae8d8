"""A toy algorithm from outside palaestra: REINFORCE with a leave-one-out baseline (RLOO).

Paper: Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from
Human Feedback in LLMs" (arXiv 2402.14740). For sample i of a group of n samples of one task:

    A_i = R_i - mean_{j != i} R_j

and the loss is the trainer core's clipped surrogate with a symmetric clip. A training YAML selects it
with `imports: [tests.trainers.toy_algorithm]` and `algorithm: {name: toy}` (or, in one line,
`algorithm: {name: "tests.trainers.toy_algorithm:toy"}`); docs/adding-an-algorithm.md walks through it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import torch
from pydantic import Field

from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers import register_algorithm
from palaestra.trainers.core.batching import Advantages, MicroBatch, Normalizers
from palaestra.trainers.core.config import AlgorithmConfig
from palaestra.trainers.core.losses import LossConfig, policy_loss
from palaestra.trainers.core.trainer import Trainer


class ToyConfig(AlgorithmConfig):
    """RLOO options."""

    name: Literal["toy"] = "toy"
    clip: float = Field(
        0.2, gt=0, lt=1, description="Symmetric clip of the ratio: 1 - clip <= rho <= 1 + clip."
    )


def leave_one_out_advantages(rewards: Sequence[float], groups: Sequence[Hashable]) -> list[float]:
    """A_i = R_i - mean of the other rewards of i's group (0 for a group of one)."""
    totals: dict[Hashable, float] = {}
    counts: dict[Hashable, int] = {}
    for r, g in zip(rewards, groups, strict=True):
        totals[g] = totals.get(g, 0.0) + r
        counts[g] = counts.get(g, 0) + 1
    return [
        r - (totals[g] - r) / (counts[g] - 1) if counts[g] > 1 else 0.0
        for r, g in zip(rewards, groups, strict=True)
    ]


class ToyTrainer(Trainer):
    """RLOO advantages, the core's clipped loss."""

    def advantages(self, trajectories: list[Trajectory]) -> Advantages:
        rewards = [t.reward for t in trajectories]
        values = leave_one_out_advantages(rewards, [t.group_index for t in trajectories])
        baselines = [r - a for r, a in zip(rewards, values, strict=True)]
        return Advantages(list(values), {"toy/baseline_mean": sum(baselines) / max(len(baselines), 1)})

    def loss(
        self,
        logp: torch.Tensor,
        batch: MicroBatch,
        *,
        ref_logp: torch.Tensor | None,
        entropy: torch.Tensor | None,
        norm: Normalizers,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        clip = ToyConfig.of(self.config.algorithm).clip  # the run's options, typed as ToyConfig
        return policy_loss(
            logp,
            batch.old_logp,
            batch.adv,
            batch.loss_mask,
            LossConfig(clip_low=clip, clip_high=clip),
            total_tokens=norm["tokens"],
        )


register_algorithm("toy", config=ToyConfig, trainer=ToyTrainer)
