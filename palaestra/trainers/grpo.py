"""GRPO for multi-turn agents, with the DAPO and Dr. GRPO options (docs/algorithms.md §1-2, §9).

Paper: Shao et al. 2024 (DeepSeekMath, arXiv 2402.03300); DAPO (Yu et al. 2025, arXiv 2503.14476);
Dr. GRPO (Liu et al. 2025, arXiv 2503.20783); StarPO-S filtering (RAGEN, arXiv 2504.20073).

Objective, per trajectory i of a group of N rollouts of the same task (Layout A: one row per episode,
loss on assistant tokens only):

    A_i   = (R_i - mean_g R) / (std_g R + eps)          (scale_by_std=False: R_i - mean_g R, Dr. GRPO)
    L     = agg_tokens( max(-A_i rho, -A_i clip(rho, 1 - eps_low, 1 + eps_high)) )
            + kl_coef * agg(KL_k3(pi || pi_ref)) - entropy_coef * agg(H)
    rho   = pi_theta(token) / pi_old(token)

R_i is the episode return (sum of step rewards), broadcast to every assistant token of the episode.

Defaults follow docs/algorithms.md Appendix B (DAPO-style): clip 0.2/0.28, token-mean aggregation, no KL,
std scaling, group size 8. §15 choices, each a config field:
    1. std scaling: `scale_by_std` (True; Dr. GRPO: False).
    2. sample std (n-1), as every verl-derived code; singleton groups get their raw score (`singleton`).
    3. aggregation: `aggregation` (token-mean | seq-mean-token-mean | seq-mean-token-sum-norm); normalised
       with counts of the whole mini-batch, so gradient accumulation is exact (not verl's per-micro-batch).
    DAPO dynamic sampling (`dynamic_sampling`), StarPO-S variance filtering (`starpo_s_keep_ratio`),
    overlong shaping (`overlong`), dual-clip (`dual_clip`), off-policy corrections of stale or
    mismatched sampling logprobs (`correction`: tis | decoupled, docs/algorithms.md §16.1).

Departures from `trainers/core`: none; this module only supplies `advantages`, `loss` and `collect`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field, model_validator

from palaestra.rollout.runner import RolloutConfig, Task
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.advantages import group_advantages
from palaestra.trainers.core.batching import Advantages, MicroBatch, Normalizers
from palaestra.trainers.core.config import AlgorithmConfig
from palaestra.trainers.core.filters import (
    group_returns,
    keep_informative_groups,
    soft_overlong_penalty,
    starpo_s_filter,
    truncated_replies,
)
from palaestra.trainers.core.losses import Correction, LossConfig, policy_loss
from palaestra.trainers.core.trainer import Trainer
from palaestra.trainers.registry import register_algorithm

if TYPE_CHECKING:
    from palaestra.config import TrainConfig

__all__ = [
    "ClippedLossOptions",
    "DualClipOption",
    "DynamicSamplingOptions",
    "GRPOConfig",
    "GRPOTrainer",
    "GroupAdvantageOptions",
    "GroupNormOptions",
    "KLOptions",
    "OffPolicyOptions",
    "OverlongOptions",
    "PolicyLossOptions",
]


class GroupNormOptions(AlgorithmConfig):
    """How group-relative advantages are normalised (every GRPO-family algorithm)."""

    scale_by_std: bool = Field(
        True, description="Divide group-centred returns by the group std (Dr. GRPO: false)."
    )
    adv_eps: float = Field(1e-6, gt=0, description="Added to the std before dividing (verl: 1e-6).")


class GroupAdvantageOptions(GroupNormOptions):
    """GRPO's group-relative advantage: its normalisation, and the advantage of a lone sample."""

    singleton: Literal["raw", "zero"] = Field(
        "raw", description="Advantage of a task with one sample: its raw return (verl) or 0."
    )


class ClippedLossOptions(AlgorithmConfig):
    """The clipped surrogate of `trainers/core/losses.py`: bounds, aggregation, entropy bonus, old logprobs."""

    clip_low: float = Field(0.2, gt=0, lt=1, description="Lower clip: ratio >= 1 - clip_low.")
    clip_high: float = Field(
        0.28, gt=0, description="Upper clip: ratio <= 1 + clip_high (DAPO clip-higher 0.28)."
    )
    aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = Field(
        "token-mean",
        description="token-mean (DAPO), seq-mean-token-mean (GRPO), seq-mean-token-sum-norm (Dr. GRPO).",
    )
    norm_len: int | None = Field(
        None, ge=1, description="Dr. GRPO constant normaliser (default: rollout max_new_tokens x turns)."
    )
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus coefficient (RAGEN: 0.001).")
    recompute_old_logprobs: bool = Field(
        True, description="Recompute old logprobs with the trainer's model (sampling numerics may differ)."
    )

    @model_validator(mode="after")
    def _norm_len_fits(self) -> ClippedLossOptions:
        if self.aggregation != "seq-mean-token-sum-norm" and self.norm_len is not None:
            raise ValueError(
                f"norm_len={self.norm_len} only applies to aggregation=seq-mean-token-sum-norm "
                f"(got aggregation={self.aggregation}); remove algorithm.norm_len"
            )
        return self


class DualClipOption(AlgorithmConfig):
    dual_clip: float | None = Field(
        None, gt=1, description="Dual-clip bound c for negative advantages (e.g. 3.0)."
    )


class KLOptions(AlgorithmConfig):
    kl_coef: float = Field(
        0.0, ge=0, description="KL-to-reference coefficient (0: no reference model is loaded)."
    )
    kl_estimator: Literal["k1", "k2", "k3"] = Field("k3", description="KL estimator (GRPO: k3).")


class OffPolicyOptions(AlgorithmConfig):
    """Off-policy corrections of the clipped surrogate (docs/algorithms.md §16.1)."""

    correction: Correction = Field(
        "none",
        description="Off-policy correction: none; tis (truncated IS of the sampler-vs-trainer logprob mismatch, "
        "weight min(pi_old/pi_rollout, tis_cap)); decoupled (stale samples: clip around pi_prox, weight "
        "min(pi_prox/pi_behav, behav_weight_cap)). Both recompute the trainer's own old logprobs.",
    )
    tis_cap: float = Field(
        2.0, ge=1, description="C of truncated IS: per-token weight min(pi_old/pi_rollout, C) (verl: 2)."
    )
    behav_weight_cap: float | None = Field(
        5.0,
        ge=1,
        description="Truncation of the decoupled weight pi_prox/pi_behav (AReaL: 5); null: not truncated.",
    )

    @model_validator(mode="after")
    def _caps_fit(self) -> OffPolicyOptions:
        defaults = type(self).model_fields
        for key, used_by in (("tis_cap", "tis"), ("behav_weight_cap", "decoupled")):
            value = getattr(self, key)
            if value != defaults[key].default and self.correction != used_by:
                raise ValueError(
                    f"{key}={value} only applies to correction={used_by} (got correction={self.correction}); "
                    f"set algorithm.correction: {used_by} or remove algorithm.{key}"
                )
        return self


class PolicyLossOptions(OffPolicyOptions, KLOptions, DualClipOption, ClippedLossOptions):
    """Every option of the shared policy loss (`trainers/core/losses.py: policy_loss`)."""

    @model_validator(mode="after")
    def _correction_recomputes(self) -> PolicyLossOptions:
        if self.correction != "none" and not self.recompute_old_logprobs:
            raise ValueError(
                f"correction={self.correction} weighs the sampler's logprobs against the trainer's own, "
                "but recompute_old_logprobs=false uses the sampler's as old logprobs; "
                "set algorithm.recompute_old_logprobs: true or algorithm.correction: none"
            )
        return self


class DynamicSamplingOptions(AlgorithmConfig):
    """Which groups a step trains on: DAPO dynamic sampling, StarPO-S variance filtering."""

    dynamic_sampling: bool = Field(
        False, description="DAPO: drop zero-variance groups and roll out more tasks."
    )
    max_sampling_rounds: int = Field(3, ge=1, description="Rollout rounds per step with dynamic sampling.")
    starpo_s_keep_ratio: float | None = Field(
        None, gt=0, le=1, description="StarPO-S: keep this fraction of groups with the highest reward std."
    )


class OverlongOptions(AlgorithmConfig):
    overlong: Literal["off", "penalty", "filter"] = Field(
        "off", description="DAPO overlong shaping: soft length penalty, or mask truncated replies."
    )
    overlong_buffer: int = Field(
        32, ge=1, description="DAPO L_cache: length band before max_new_tokens penalised."
    )


class GRPOConfig(OverlongOptions, DynamicSamplingOptions, PolicyLossOptions, GroupAdvantageOptions):
    """Options of GRPO and its DAPO / Dr. GRPO / StarPO-S variants."""

    name: Literal["grpo"] = "grpo"


class GRPOTrainer(Trainer):
    """GRPO / DAPO / Dr. GRPO over multi-turn episodes (see the module docstring)."""

    def __init__(self, config: TrainConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.loss_config = self.make_loss_config()

    def make_loss_config(self) -> LossConfig:
        """The shared loss's options from the algorithm's (Dr. GRPO's default `norm_len` filled in)."""
        algo = PolicyLossOptions.of(self.config.algorithm)
        return LossConfig(
            clip_low=algo.clip_low,
            clip_high=algo.clip_high,
            dual_clip=algo.dual_clip,
            aggregation=algo.aggregation,
            norm_len=self.norm_len,
            kl_coef=algo.kl_coef,
            kl_estimator=algo.kl_estimator,
            entropy_coef=algo.entropy_coef,
            correction=algo.correction,
            tis_cap=algo.tis_cap,
            behav_weight_cap=algo.behav_weight_cap,
        )

    @property
    def norm_len(self) -> int | None:
        """`norm_len`, or for seq-mean-token-sum-norm without one, max_new_tokens x turns."""
        algo = ClippedLossOptions.of(self.config.algorithm)
        if algo.aggregation == "seq-mean-token-sum-norm" and algo.norm_len is None:
            return self.config.rollout.max_new_tokens * (self.config.rollout.max_turns or 1)
        return algo.norm_len

    @property
    def needs_reference(self) -> bool:
        algo = KLOptions.of(self.config.algorithm)
        return algo.kl_coef > 0

    @property
    def recompute_old_logprobs(self) -> bool:
        algo = ClippedLossOptions.of(self.config.algorithm)
        return algo.recompute_old_logprobs

    @property
    def needs_entropy_grad(self) -> bool:
        algo = ClippedLossOptions.of(self.config.algorithm)
        return algo.entropy_coef > 0

    # -- sampling strategy -------------------------------------------------------------------------
    async def collect(self, tasks: list[Task]) -> tuple[list[Trajectory], dict[str, float]]:
        """Groups of rollouts; with dynamic sampling, more tasks until enough informative groups."""
        algo = DynamicSamplingOptions.of(self.config.algorithm)
        config = self.rollout_config(self.step)
        trajectories, metrics = await self.roll_out(tasks, config)
        if algo.dynamic_sampling:
            trajectories, sampling = await self._dynamic_sampling(trajectories, len(tasks), config)
            metrics.update(sampling)
        if algo.starpo_s_keep_ratio is not None:
            groups = group_returns(trajectories)
            order = list(groups)
            kept = {
                order[i] for i in starpo_s_filter(list(groups.values()), algo.starpo_s_keep_ratio).tolist()
            }
            trajectories = [t for t in trajectories if t.group_index in kept]
            metrics["sampling/starpo_s_kept_groups"] = float(len(kept))
        return trajectories, metrics

    async def _dynamic_sampling(
        self, trajectories: list[Trajectory], wanted: int, config: RolloutConfig
    ) -> tuple[list[Trajectory], dict[str, float]]:
        """DAPO (§2.2 item 3): drop zero-variance groups, roll out more tasks until `wanted` groups remain.

        After `max_sampling_rounds` rounds the informative groups found so far are used, even if fewer.
        """
        algo = DynamicSamplingOptions.of(self.config.algorithm)
        kept: list[Trajectory] = []
        dropped = 0
        rounds = 0
        offset = 0
        while True:
            rounds += 1
            groups = group_returns(trajectories)
            informative = {list(groups)[i] for i in keep_informative_groups(list(groups.values()))}
            dropped += len(groups) - len(informative)
            for t in trajectories:
                if t.group_index in informative:
                    t.group_index += offset  # keep group ids distinct across rounds
                    kept.append(t)
            have = len({t.group_index for t in kept})
            if have >= wanted or rounds >= algo.max_sampling_rounds:
                break
            offset += wanted * algo.max_sampling_rounds + len(trajectories)
            more = self.sampler.sample(wanted - have)
            trajectories, _ = await self.roll_out(more, config)
        keep_groups = sorted({t.group_index for t in kept})[:wanted]
        kept = [t for t in kept if t.group_index in set(keep_groups)]
        return kept, {
            "sampling/rounds": float(rounds),
            "sampling/zero_variance_dropped": float(dropped),
            "sampling/groups": float(len(keep_groups)),
        }

    # -- advantages --------------------------------------------------------------------------------
    def scores(self, trajectories: list[Trajectory]) -> list[float]:
        """Episode returns, plus DAPO's soft overlong penalty per reply when `overlong="penalty"`."""
        algo = OverlongOptions.of(self.config.algorithm)
        if algo.overlong != "penalty":
            return [t.reward for t in trajectories]
        max_len = self.config.rollout.max_new_tokens
        cache = min(algo.overlong_buffer, max_len)
        return [
            t.reward
            + sum(
                soft_overlong_penalty(end - start, max_len, cache)
                for start, end in (u.token_span for u in t.turns)
            )
            for t in trajectories
        ]

    def advantages(self, trajectories: list[Trajectory]) -> Advantages:
        algo = GroupAdvantageOptions.of(self.config.algorithm)
        adv = group_advantages(
            self.scores(trajectories),
            [t.group_index for t in trajectories],
            scale_by_std=algo.scale_by_std,
            eps=algo.adv_eps,
            singleton=algo.singleton,
        ).tolist()
        return Advantages(adv)

    def trainable(self, trajectories: list[Trajectory]) -> list[bool]:
        """DAPO overlong filtering (§2.2 item 5a): episodes with a truncated reply leave the loss."""
        algo = OverlongOptions.of(self.config.algorithm)
        if algo.overlong != "filter":
            return super().trainable(trajectories)
        return [not cut for cut in truncated_replies(trajectories)]

    # -- loss --------------------------------------------------------------------------------------
    def loss(
        self,
        logp: torch.Tensor,
        batch: MicroBatch,
        *,
        ref_logp: torch.Tensor | None,
        entropy: torch.Tensor | None,
        norm: Normalizers,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return policy_loss(
            logp,
            batch.old_logp,
            batch.adv,
            batch.loss_mask,
            self.loss_config,
            behav_logp=batch.behav_logp,
            ref_logp=ref_logp,
            entropy=entropy,
            total_tokens=norm["tokens"],
            num_sequences=norm["sequences"],
        )


register_algorithm("grpo", config=GRPOConfig, trainer=GRPOTrainer)
