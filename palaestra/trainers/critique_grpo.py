"""Critique-GRPO: critique-guided refinements join the group, with policy shaping (docs/algorithms.md §5).

Paper: Zhang, Sun, Zhang, Feng, Lu, Yang, Meng, "Critique-GRPO: Advancing LLM Reasoning with Natural
Language and Numerical Feedback" (arXiv 2506.03106); reference code zhangxy-2019/critique-GRPO.

Sampling: G replies per task; if the refinement condition holds (paper: no reply is correct), every
reply is critiqued (`palaestra.rollout.critique`: rule-based critic from the env's verdict, feedback or
expert answer, or a model critic) and refined by the policy; the k best refinements (correct first,
then highest reward) join the group as responses *to the original prompt* (§5.3).

Objective, with R^(j) over the n initial replies and k refinements of a task:

    Â^(j)    = R^(j) − mean_group R                  (no std: Dr. GRPO style; `scale_by_std`)
    initial  : L_tok = max(−Â ρ, −Â clip(ρ, 1 ± ε)),          ρ = π_θ / π_old
    refined  : L_tok = max(−Â f, −Â clip(f, 1 ± ε)),           f = π_θ / (π_θ + γ)   (policy shaping)
    L        = agg(L_tok)  (seq-mean-token-sum-norm by default: Σ L / (B · L_const)); no KL.

Choices (§5.8, §15 item 7), each a config field:
    * `refine_when`: "all_fail" (latest paper) or "always" (code).
    * `refinement_clip`: clip on the shaped ratio (paper Eq. 4) or not (code); `on_policy_clip` likewise
      for initial replies (code removes it).
    * `placement`: refinements "replace" the first k replies (code: "rollout7_critique_1", group size
      stays G) or are "append"ed (paper: n + k).
    * `scale_by_std` False (paper) — the released code divides by std; one switch.
    * One aggregation over all tokens (paper: separate 1/n and 1/k group means).
    * Only single-turn replies are refined (multi-turn episodes raise: set rollout.max_turns=1).

Departures from `trainers/core`: `collect` (critique + refinement) and `loss` (shaped refinement tokens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field

from palaestra.agents.base import SamplingParams
from palaestra.rollout.critique import Critic, PolicyCritic, RuleCritic, refine
from palaestra.rollout.runner import Task
from palaestra.rollout.trajectory import Refinement, Trajectory
from palaestra.trainers.core.batching import MicroBatch, Normalizers
from palaestra.trainers.core.losses import LOG_RATIO_LIMIT, LossConfig, bind_aggregation, masked_mean
from palaestra.trainers.grpo import (
    ClippedLossOptions,
    DynamicSamplingOptions,
    GroupAdvantageOptions,
    GRPOTrainer,
    OverlongOptions,
)
from palaestra.trainers.registry import register_algorithm

if TYPE_CHECKING:
    from palaestra.config import TrainConfig

__all__ = ["CritiqueGRPOConfig", "CritiqueGRPOTrainer", "critique_grpo_loss", "select_refinements"]


_NO_KL = "Critique-GRPO has no KL term (paper: none, to let refinements move the policy)"
_NO_CORRECTION = "its mixed loss (critique_grpo_loss) has no off-policy correction"


class CritiqueGRPOConfig(OverlongOptions, DynamicSamplingOptions, ClippedLossOptions, GroupAdvantageOptions):
    """Critique-GRPO options (paper App. G defaults), on top of GRPO's options.

    Not GRPO's KL options (the objective has no KL term), `dual_clip` (the mixed loss clips ρ and the
    shaped ratio, never dual-clips) nor the off-policy corrections (`correction` and its caps).
    """

    earlier_defaults: ClassVar[dict[str, Any]] = {"dual_clip": None, "kl_coef": 0.0, "kl_estimator": "k3"}
    unsupported: ClassVar[dict[str, str]] = {
        "kl_coef": _NO_KL,
        "kl_estimator": _NO_KL,
        "dual_clip": "its mixed loss (critique_grpo_loss) has no dual-clip",
        **dict.fromkeys(("correction", "tis_cap", "behav_weight_cap"), _NO_CORRECTION),
    }

    name: Literal["critique_grpo"] = "critique_grpo"
    scale_by_std: bool = Field(False, description="Paper: no std (the released code divides by it).")
    clip_high: float = Field(0.2, gt=0, description="Upper clip ε (paper 0.2).")
    aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = Field(
        "seq-mean-token-sum-norm", description="Paper/code: no 1/|o| (constant normaliser)."
    )
    critic: Literal["indicative", "ground_truth", "feedback", "self"] = Field(
        "ground_truth", description="Rule-based critic kind, or 'self': the policy writes CoT critiques."
    )
    critic_reference: bool = Field(False, description="Self-critique sees the expert answer as reference.")
    shaping_gamma: float = Field(0.1, gt=0, lt=1, description="γ of f = π/(π+γ) on refinement tokens.")
    num_refinements: int = Field(1, ge=1, description="k refinements per task (paper 1 of 8).")
    refine_when: Literal["all_fail", "always"] = Field(
        "all_fail", description="Paper: all fail; code: always."
    )
    placement: Literal["replace", "append"] = Field("replace", description="Refinements replace the first k.")
    refinement_clip: bool = Field(True, description="Clip the shaped ratio (paper Eq. 4; code: no).")
    on_policy_clip: bool = Field(True, description="Clip initial replies' ratio (code: no).")

    def async_unsupported(self) -> str | None:
        return "its refinements are written by the learner after each step's critiques"


def select_refinements(refinements: list[Trajectory], k: int) -> list[Trajectory]:
    """The k refinements to keep: correct ones first, then by reward (code's max-score fallback)."""
    ranked = sorted(
        range(len(refinements)), key=lambda i: (not refinements[i].success, -refinements[i].reward, i)
    )
    return [refinements[i] for i in ranked[:k]]


def critique_grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    loss_mask: torch.Tensor,
    refinement_mask: torch.Tensor,
    cfg: LossConfig,
    *,
    gamma: float = 0.1,
    refinement_clip: bool = True,
    on_policy_clip: bool = True,
    total_tokens: int | None = None,
    num_sequences: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mixed loss (§5.4): PPO-clip on initial-reply tokens, shaped π/(π+γ) on refinement tokens.

    Args:
        logp: (B, T) log π_θ.
        old_logp: (B, T) log π_old (unused on refinement tokens).
        adv: (B, T) per-token advantages.
        loss_mask: (B, T) 1 on sampled tokens.
        refinement_mask: (B, T) 1 on tokens of refinement rows.
        cfg: clip bounds and aggregation (its KL/entropy options are not used here).
        gamma: shaping γ.
        refinement_clip: clip f to [1 − ε_low, 1 + ε_high] (paper) or not (code).
        on_policy_clip: clip ρ for initial replies (paper) or not (code).
        total_tokens: global masked tokens of the optimizer step.
        num_sequences: global sequences of the optimizer step.

    Returns:
        The loss and metrics `loss/pg`, `critique/refinement_tokens`, `critique/shaped_mean`.
    """
    ratio = torch.exp((logp - old_logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT))  # (B, T)
    lo, hi = 1.0 - cfg.clip_low, 1.0 + cfg.clip_high
    on = torch.maximum(-adv * ratio, -adv * ratio.clamp(lo, hi)) if on_policy_clip else -adv * ratio
    p = torch.exp(logp)
    shaped = p / (p + gamma)  # (B, T), gradient γπ/(π+γ)² ∇log π
    off = torch.maximum(-adv * shaped, -adv * shaped.clamp(lo, hi)) if refinement_clip else -adv * shaped
    loss_tok = torch.where(refinement_mask.bool(), off, on)  # (B, T)
    loss = bind_aggregation(cfg, total_tokens=total_tokens, num_sequences=num_sequences)(loss_tok, loss_mask)
    ref = refinement_mask * loss_mask
    with torch.no_grad():
        metrics = {
            "loss/pg": float(bind_aggregation(cfg)(loss_tok, loss_mask)),
            "critique/refinement_tokens": float(ref.sum() / loss_mask.sum().clamp(min=1)),
            "critique/shaped_mean": float(masked_mean(shaped, ref)),
        }
    return loss, metrics


class CritiqueGRPOTrainer(GRPOTrainer):
    """GRPO with critique-guided refinements in the group (see the module docstring)."""

    def __init__(self, config: TrainConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        algo = self.algo
        self.critic: Critic = (
            PolicyCritic(self.policy, show_reference=algo.critic_reference)
            if algo.critic == "self"
            else RuleCritic(algo.critic)
        )

    @property
    def algo(self) -> CritiqueGRPOConfig:
        """This run's Critique-GRPO options (`config.algorithm`)."""
        return CritiqueGRPOConfig.of(self.config.algorithm)

    async def collect(self, tasks: list[Task]) -> tuple[list[Trajectory], dict[str, float]]:
        algo = self.algo
        trajectories, metrics = await super().collect(tasks)
        if any(t.num_turns > 1 for t in trajectories):
            raise ValueError(
                "Critique-GRPO refines single replies, but episodes had several turns; set rollout.max_turns=1"
            )
        groups: dict[int, list[Trajectory]] = {}
        for t in trajectories:
            groups.setdefault(t.group_index, []).append(t)
        todo = [
            g for g, ts in groups.items() if algo.refine_when == "always" or not any(t.success for t in ts)
        ]
        config = self.rollout_config(self.step)
        sampling = SamplingParams(
            max_new_tokens=config.sampling.max_new_tokens,
            temperature=config.sampling.temperature,
            top_p=config.sampling.top_p,
            seed=config.sampling.seed,
        )
        initial = [t for g in todo for t in groups[g] if t.error is None]  # a failed episode has no reply
        refined = await refine(self.policy, initial, self.critic, sampling, config=config)
        by_group: dict[int, list[Trajectory]] = {}
        for r in refined:
            by_group.setdefault(r.group_index, []).append(r)
        out: list[Trajectory] = []
        for g, members in groups.items():
            chosen = select_refinements(by_group.get(g, []), algo.num_refinements)
            kept = members[len(chosen) :] if algo.placement == "replace" else members
            out += chosen + kept
        metrics.update(
            {
                "critique/refined_groups": float(len(todo)),
                "critique/refinement_success": float(sum(r.success for r in refined) / max(len(refined), 1)),
                "critique/initial_success": float(
                    sum(t.success for t in trajectories) / max(len(trajectories), 1)
                ),
            }
        )
        return out, metrics

    def make_loss_config(self) -> LossConfig:
        algo = self.algo
        return LossConfig(
            clip_low=algo.clip_low,
            clip_high=algo.clip_high,
            aggregation=algo.aggregation,
            norm_len=self.norm_len,
            entropy_coef=algo.entropy_coef,
        )

    @property
    def needs_reference(self) -> bool:
        return False

    def off_policy(self, trajectories: list[Trajectory]) -> list[bool]:
        """The refinements: replies to a critique, trained as replies to the original prompt."""
        return [isinstance(t.algo, Refinement) for t in trajectories]

    def loss(
        self,
        logp: torch.Tensor,
        batch: MicroBatch,
        *,
        ref_logp: torch.Tensor | None,
        entropy: torch.Tensor | None,
        norm: Normalizers,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        algo = self.algo
        rows = batch.off_policy.to(logp.dtype)  # (B,)
        loss, metrics = critique_grpo_loss(
            logp,
            batch.old_logp,
            batch.adv,
            batch.loss_mask,
            rows[:, None].expand_as(batch.loss_mask),
            self.loss_config,
            gamma=algo.shaping_gamma,
            refinement_clip=algo.refinement_clip,
            on_policy_clip=algo.on_policy_clip,
            total_tokens=norm["tokens"],
            num_sequences=norm["sequences"],
        )
        if entropy is not None:
            agg = bind_aggregation(
                self.loss_config, total_tokens=norm["tokens"], num_sequences=norm["sequences"]
            )
            if algo.entropy_coef > 0:
                loss = loss - algo.entropy_coef * agg(entropy, batch.loss_mask)
            metrics["loss/entropy"] = float(masked_mean(entropy.detach(), batch.loss_mask))
        return loss, metrics


register_algorithm("critique_grpo", config=CritiqueGRPOConfig, trainer=CritiqueGRPOTrainer)
