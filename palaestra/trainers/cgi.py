"""CGI: critique-guided improvement, as supervised training of the actor (ALGORITHMS.md §6).

Paper: Yang et al., "The Lighthouse of Language: Enhancing LLM Agents via Critique-Guided Improvement"
(arXiv 2503.16024, NeurIPS 2025). CGI is not a policy-gradient method: an actor acts with a critic in the
loop (candidate action -> natural-language critique -> refined action, which the env executes), and the
actor is fine-tuned on the refinements of successful episodes (§6.3, iterative action refinement):

    D   = { (ctx_t, a_t, c_t) -> a'_t } ∪ { ctx_t -> a'_t }     steps of episodes that succeeded
    L   = − (1/|tokens|) Σ log π_θ(a'_t tokens | prompt)         token-mean NLL (SFT)

The rollout and trainer plumbing are the shared ones (`rollout.critique.CritiqueGuidedRunner`, the core
loop with its micro-batching, checkpoints and evaluation); only `collect` and `loss` differ.

Choices (§6.6: the official code was not read, so details are ours), each a config field:
    * Critic: rule-based from the env's expert (`ground_truth`: verdict + the expert action;
      `indicative`: verdict only; the verdict compares the candidate with `info["expert_action"]`),
      or `self`: the actor itself writes the critique (a model critic through the policy backend).
      The paper's separately SFT-trained critic (Stage 1) is not trained here.
    * `direct_rows`: also train ctx -> a' (the actor learns to act well without a critique).
    * `keep`: rows from successful episodes (rejection sampling, default) or from every episode.
    * Online, iterative: each step fine-tunes the current actor on the step's new data (the paper
      re-trains from the base model on all data each round, mixed with expert and general data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from palaestra.rollout.critique import Critic, CritiqueGuidedRunner, PolicyCritic, RuleCritic
from palaestra.rollout.runner import Task
from palaestra.rollout.semi_online import matcher_for
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.batching import MicroBatch
from palaestra.trainers.core.losses import masked_mean, token_mean
from palaestra.trainers.core.trainer import Normalizers, Trainer

if TYPE_CHECKING:
    from palaestra.config import TrainConfig

__all__ = ["CGIConfig", "CGITrainer", "sft_loss"]


class CGIConfig(BaseModel):
    """CGI options (see the module docstring for the choices)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: Literal["cgi"] = "cgi"
    critic: Literal["indicative", "ground_truth", "self"] = Field(
        "ground_truth", description="Rule critic from the env's expert, or 'self' (the actor critiques)."
    )
    matcher: Literal["auto", "bracket", "web", "exact"] = Field(
        "auto", description="How rule critics compare a candidate with the expert action."
    )
    direct_rows: bool = Field(True, description="Also train ctx -> refined action (no critique in context).")
    keep: Literal["success", "all"] = Field(
        "success", description="Train on successful episodes only, or all."
    )
    epochs: int = Field(1, ge=1, description="Passes over each step's SFT data.")
    mini_batches: int = Field(1, ge=1, description="Optimizer steps per pass.")
    # read by the trainer core; fixed for SFT
    kl_coef: float = Field(0.0, ge=0, le=0, description="Always 0: no reference model (SFT).")
    recompute_old_logprobs: bool = Field(False, description="Unused by SFT (no ratio).")

    @property
    def needs_groups(self) -> bool:
        return False


def sft_loss(
    logp: torch.Tensor, loss_mask: torch.Tensor, *, total_tokens: int | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-mean negative log-likelihood of the masked tokens (exact under gradient accumulation).

    Args:
        logp: (B, T) log π_θ of the target tokens.
        loss_mask: (B, T) 1 on the tokens to imitate.
        total_tokens: masked tokens of the whole optimizer step (None: this batch's).

    Returns:
        The loss and `loss/nll` (this batch's own mean).
    """
    loss = token_mean(-logp, loss_mask, total_tokens=total_tokens)
    return loss, {"loss/nll": float(masked_mean(-logp.detach(), loss_mask))}


class CGITrainer(Trainer):
    """Critique-guided rollouts and SFT of the actor on successful refinements (module docstring)."""

    config_class = CGIConfig

    def __init__(self, config: TrainConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        algo: CGIConfig = config.algorithm
        self.critic: Critic = PolicyCritic(self.policy) if algo.critic == "self" else RuleCritic(algo.critic)

    async def collect(self, tasks: list[Task]) -> tuple[list[Trajectory], dict[str, float]]:
        algo: CGIConfig = self.config.algorithm
        config = self.rollout_config(self.step)
        rows: list[Trajectory] = []
        episodes = []
        for task in tasks:  # one runner per task: the matcher depends on the env
            runner = CritiqueGuidedRunner(
                self.policy,
                self.critic,
                sampling=config.sampling,
                matcher=matcher_for(task.env_id, algo.matcher),
                max_turns=self.config.rollout.max_turns,
            )
            episodes += await runner.run([task], config.group_size)
        for ep in episodes:
            if algo.keep == "success" and not ep.success:
                continue
            rows += ep.refined_rows + (ep.direct_rows if algo.direct_rows else [])
        for i, row in enumerate(rows):
            row.sample_index = i
        n = max(len(episodes), 1)
        metrics = {
            "cgi/success": sum(e.success for e in episodes) / n,
            "cgi/reward": sum(e.reward for e in episodes) / n,
            "cgi/sft_rows": float(len(rows)),
            "cgi/changed_by_critique": sum(
                sum(c != r.turns[0].action for c, r in zip(e.candidates, e.refined_rows, strict=True))
                for e in episodes
            )
            / max(sum(len(e.candidates) for e in episodes), 1),
        }
        return rows, metrics

    def advantages(self, trajectories: list[Trajectory]) -> list[float | list[float]]:
        return [1.0] * len(trajectories)  # SFT: every kept token has weight 1

    def loss(
        self,
        logp: torch.Tensor,
        batch: MicroBatch,
        *,
        ref_logp: torch.Tensor | None,
        entropy: torch.Tensor | None,
        norm: Normalizers,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss, metrics = sft_loss(logp, batch.loss_mask, total_tokens=norm["tokens"])
        if entropy is not None:
            metrics["loss/entropy"] = float(masked_mean(entropy.detach(), batch.loss_mask))
        return loss, metrics
