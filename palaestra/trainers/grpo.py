"""GRPO for multi-turn agents, with the DAPO and Dr. GRPO options (ALGORITHMS.md §1-2, §9).

Paper: Shao et al. 2024 (DeepSeekMath, arXiv 2402.03300); DAPO (Yu et al. 2025, arXiv 2503.14476);
Dr. GRPO (Liu et al. 2025, arXiv 2503.20783); StarPO-S filtering (RAGEN, arXiv 2504.20073).

Objective, per trajectory i of a group of N rollouts of the same task (Layout A: one row per episode,
loss on assistant tokens only):

    A_i   = (R_i - mean_g R) / (std_g R + eps)          (scale_by_std=False: R_i - mean_g R, Dr. GRPO)
    L     = agg_tokens( max(-A_i rho, -A_i clip(rho, 1 - eps_low, 1 + eps_high)) )
            + kl_coef * agg(KL_k3(pi || pi_ref)) - entropy_coef * agg(H)
    rho   = pi_theta(token) / pi_old(token)

R_i is the episode return (sum of step rewards), broadcast to every assistant token of the episode.

Defaults follow ALGORITHMS.md Appendix B (DAPO-style): clip 0.2/0.28, token-mean aggregation, no KL,
std scaling, group size 8. §15 choices, each a config field:
    1. std scaling: `scale_by_std` (True; Dr. GRPO: False).
    2. sample std (n-1), as every verl-derived code; singleton groups get their raw score (`singleton`).
    3. aggregation: `aggregation` (token-mean | seq-mean-token-mean | seq-mean-token-sum-norm); normalised
       with counts of the whole mini-batch, so gradient accumulation is exact (not verl's per-micro-batch).
    DAPO dynamic sampling (`dynamic_sampling`), StarPO-S variance filtering (`starpo_s_keep_ratio`),
    overlong shaping (`overlong`), dual-clip (`dual_clip`).

Departures from `trainers/core`: none; this module only supplies `advantages`, `loss` and `collect`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["GRPOConfig"]


class GRPOConfig(BaseModel):
    """Options of GRPO and its DAPO / Dr. GRPO / StarPO-S variants."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: Literal["grpo"] = "grpo"
    # -- advantages --
    scale_by_std: bool = Field(
        True, description="Divide group-centred returns by the group std (Dr. GRPO: false)."
    )
    adv_eps: float = Field(1e-6, gt=0, description="Added to the std before dividing (verl: 1e-6).")
    singleton: Literal["raw", "zero"] = Field(
        "raw", description="Advantage of a task with one sample: its raw return (verl) or 0."
    )
    # -- loss --
    clip_low: float = Field(0.2, gt=0, lt=1, description="Lower clip: ratio >= 1 - clip_low.")
    clip_high: float = Field(
        0.28, gt=0, description="Upper clip: ratio <= 1 + clip_high (DAPO clip-higher 0.28)."
    )
    dual_clip: float | None = Field(
        None, gt=1, description="Dual-clip bound c for negative advantages (e.g. 3.0)."
    )
    aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = Field(
        "token-mean",
        description="token-mean (DAPO), seq-mean-token-mean (GRPO), seq-mean-token-sum-norm (Dr. GRPO).",
    )
    norm_len: int | None = Field(
        None, ge=1, description="Dr. GRPO constant normaliser (default: rollout max_new_tokens x turns)."
    )
    kl_coef: float = Field(
        0.0, ge=0, description="KL-to-reference coefficient (0: no reference model is loaded)."
    )
    kl_estimator: Literal["k1", "k2", "k3"] = Field("k3", description="KL estimator (GRPO: k3).")
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus coefficient (RAGEN: 0.001).")
    # -- sampling --
    dynamic_sampling: bool = Field(
        False, description="DAPO: drop zero-variance groups and roll out more tasks."
    )
    max_sampling_rounds: int = Field(3, ge=1, description="Rollout rounds per step with dynamic sampling.")
    starpo_s_keep_ratio: float | None = Field(
        None, gt=0, le=1, description="StarPO-S: keep this fraction of groups with the highest reward std."
    )
    overlong: Literal["off", "penalty", "filter"] = Field(
        "off", description="DAPO overlong shaping: soft length penalty, or mask truncated replies."
    )
    overlong_buffer: int = Field(
        32, ge=1, description="DAPO L_cache: length band before max_new_tokens penalised."
    )
    # -- update --
    recompute_old_logprobs: bool = Field(
        True, description="Recompute old logprobs with the trainer's model (sampling numerics may differ)."
    )
    epochs: int = Field(1, ge=1, description="Passes over each rollout batch.")
    mini_batches: int = Field(
        1, ge=1, description="Optimizer steps per pass (rollout batch split in this many)."
    )

    @property
    def needs_groups(self) -> bool:
        return True

    @model_validator(mode="after")
    def _check(self) -> GRPOConfig:
        if self.aggregation != "seq-mean-token-sum-norm" and self.norm_len is not None:
            raise ValueError(
                f"norm_len={self.norm_len} only applies to aggregation=seq-mean-token-sum-norm "
                f"(got aggregation={self.aggregation}); remove algorithm.norm_len"
            )
        return self
