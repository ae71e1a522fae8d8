"""CGI: critique-guided improvement, as supervised training of the actor (docs/algorithms.md §6).

Paper: Yang et al., "The Lighthouse of Language: Enhancing LLM Agents via Critique-Guided Improvement"
(arXiv 2503.16024, NeurIPS 2025). CGI is not a policy-gradient method: an actor acts with a critic in the
loop (candidate action -> natural-language critique -> refined action, which the env executes), and the
actor is fine-tuned on the refinements of successful episodes (§6.3, iterative action refinement):

    D   = { (ctx_t, a_t, c_t) -> a'_t } ∪ { ctx_t -> a'_t }     steps of episodes that succeeded
    L   = − (1/|tokens|) Σ log π_θ(a'_t tokens | prompt)         token-mean NLL (SFT)

The rollout and trainer plumbing are the shared ones (`rollout.critique.CritiqueGuidedRunner`, the core
loop with its micro-batching, checkpoints and evaluation); only `collect` and `loss` differ.

Choices (§6.6: the official code was not read, so details are ours), each a config field:
    * Critic: rule-based from the env's expert (`ground_truth`: verdict + the expert action,
      `indicative`: verdict only; the verdict compares the candidate with `info["expert_action"]`),
      `self`: the actor itself writes the critique (a model critic through the policy backend), or
      `trained`: the paper's separate critic model, fine-tuned first (Stage 1, `trainers/critic.py`):
      `critic_training.rounds` rounds of actor rollouts with a teacher critic in the loop, whose
      critiques (verdict-filtered) are the critic's SFT data; Stage 2 then critiques with the trained
      model (`PolicyCritic`, no reference shown). The teacher is a rule critic (default `ground_truth`)
      or any model (`critic_training.teacher: openai:MODEL`, ...) standing in for the paper's GPT-4.
      The critic is not trained further in Stage 2; its SFT data is kept in RUN/critic/critiques.parquet,
      it is exported to RUN/critic/final and checkpointed with the actor (RUN/critic/checkpoints, same
      steps), so resume restores it.
    * `direct_rows`: also train ctx -> a' (the actor learns to act well without a critique).
    * `keep`: rows from successful episodes (rejection sampling, default) or from every episode.
    * Online, iterative: each step fine-tunes the current actor on the step's new data (the paper
      re-trains from the base model on all data each round, mixed with expert and general data).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field

from palaestra.agents.base import SamplingParams
from palaestra.rollout.critique import Critic, CritiqueGuidedRunner, GuidedEpisode, PolicyCritic, RuleCritic
from palaestra.rollout.remote_jobs import CriticSpec, CritiqueGuidedJob
from palaestra.rollout.runner import Task
from palaestra.rollout.semi_online import matcher_for
from palaestra.rollout.storage import save_trajectories
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.batching import MicroBatch, Normalizers
from palaestra.trainers.core.config import AlgorithmConfig
from palaestra.trainers.core.losses import masked_mean
from palaestra.trainers.core.ray_source import RayRollouts, reject_ray
from palaestra.trainers.critic import (
    CriticTrainer,
    CriticTrainingConfig,
    SupervisedTrainer,
    critique_rows,
    sft_loss,
    teacher_critic,
)
from palaestra.trainers.registry import register_algorithm

if TYPE_CHECKING:
    from palaestra.config import TrainConfig

__all__ = ["CGIConfig", "CGITrainer", "sft_loss"]


class CGIConfig(AlgorithmConfig):
    """CGI options (see the module docstring for the choices)."""

    needs_groups: ClassVar[bool] = False  # SFT of single episodes: nothing is compared within a task
    earlier_defaults: ClassVar[dict[str, Any]] = {"kl_coef": 0.0, "recompute_old_logprobs": False}

    name: Literal["cgi"] = "cgi"
    critic: Literal["indicative", "ground_truth", "self", "trained"] = Field(
        "ground_truth",
        description="Rule critic from the env's expert, 'self' (the actor critiques) or 'trained' (Stage 1 "
        "SFT of a separate critic model, see critic_training).",
    )
    critic_training: CriticTrainingConfig = Field(
        default_factory=CriticTrainingConfig, description="Stage 1 options (critic: trained)."
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

    def async_unsupported(self) -> str | None:
        return "its critique-guided episodes are rolled out by the learner with the critic"


class CGITrainer(SupervisedTrainer):
    """Critique-guided rollouts and SFT of the actor on successful refinements (module docstring)."""

    def __init__(self, config: TrainConfig, **kwargs: Any):
        algo = CGIConfig.of(config.algorithm)
        # the trained critic (and its Stage-1 teacher) lives in the trainer's process
        reject_ray(config, ["algorithm.critic=trained"] if algo.critic == "trained" else [])
        model = kwargs.get("model")
        critic_init = copy.deepcopy(model) if algo.critic == "trained" and model is not None else None
        super().__init__(config, **kwargs)
        self.critic_trainer: CriticTrainer | None = None
        self.critic_ready = algo.critic != "trained"
        if algo.critic == "trained":
            if self.dist.enabled:
                raise ValueError("algorithm.critic=trained runs in one process; launch without torchrun")
            spec = algo.critic_training
            if spec.init is None:  # the critic starts from the actor's initial weights
                self.critic_trainer = CriticTrainer(config, spec, model=critic_init, tokenizer=self.tokenizer)
            else:
                self.critic_trainer = CriticTrainer(config, spec)
            sampling = SamplingParams(
                temperature=spec.temperature, max_new_tokens=spec.max_new_tokens, seed=config.run.seed
            )
            self.critic: Critic = PolicyCritic(self.critic_trainer.policy, sampling=sampling)
        elif algo.critic == "self":
            self.critic = PolicyCritic(self.policy)
        else:
            self.critic = RuleCritic(algo.critic)

    @property
    def algo(self) -> CGIConfig:
        """This run's CGI options (`config.algorithm`)."""
        return CGIConfig.of(self.config.algorithm)

    def _critic_on_worker(self, critic: Critic) -> Critic | CriticSpec:
        """`rollout.ray`: a rule critic as it is; the self-critic as the worker's own policy."""
        if isinstance(critic, PolicyCritic) and critic.policy is self.policy:
            return CriticSpec(critic.sampling, critic.show_reference)
        if isinstance(critic, RuleCritic):
            return critic
        raise TypeError(f"critic {critic!r} cannot be sent to Ray workers")  # rejected in __init__

    async def _guided(self, tasks: list[Task], critic: Critic) -> list[GuidedEpisode]:
        algo = self.algo
        config = self.rollout_config(self.step)
        if isinstance(self.rollouts, RayRollouts):
            sent = self._critic_on_worker(critic)
            jobs = [
                CritiqueGuidedJob(
                    task,
                    0,
                    s,
                    config,
                    sent,
                    matcher=matcher_for(task.env_id, algo.matcher),
                    max_turns=self.config.rollout.max_turns,
                )
                for task in tasks
                for s in range(config.group_size)
            ]
            return list(await self.rollouts.run_jobs(jobs))
        episodes = []
        for task in tasks:  # one runner per task: the matcher depends on the env
            runner = CritiqueGuidedRunner(
                self.policy,
                critic,
                sampling=config.sampling,
                matcher=matcher_for(task.env_id, algo.matcher),
                max_turns=self.config.rollout.max_turns,
                config=config,
            )
            episodes += await runner.run([task], config.group_size)
        return episodes

    async def train_critic(self) -> dict[str, float]:
        """CGI Stage 1: rounds of actor rollouts with the teacher in the loop, then critic SFT."""
        algo = self.algo
        spec, trainer = algo.critic_training, self.critic_trainer
        assert trainer is not None
        teacher = teacher_critic(spec)
        metrics: dict[str, float] = {}
        asked = 0
        data: list[Trajectory] = []
        for _ in range(spec.rounds):
            tasks = self.sampler.sample(spec.tasks_per_round or self.config.rollout.tasks_per_step)
            episodes = await self._guided(tasks, teacher)
            requests = [r for e in episodes for r in e.requests]
            rows = critique_rows(
                requests, [c for e in episodes for c in e.critiques], trainer.tokenizer, filter=spec.filter
            )
            asked, data = asked + len(requests), data + rows
            before = trainer.nll(rows)
            metrics = {
                **trainer.fit(rows),
                "critic/nll_before": before,
                "critic/nll_after": trainer.nll(rows),
            }
        metrics["critic/kept_fraction"] = len(data) / max(asked, 1)
        trainer.run_dir.mkdir(parents=True, exist_ok=True)
        save_trajectories(data, trainer.run_dir / "critiques.parquet")  # the SFT data, e.g. for TRL
        trainer.export(trainer.run_dir / "final")
        self.critic_ready = True
        return metrics

    async def collect(self, tasks: list[Task]) -> tuple[list[Trajectory], dict[str, float]]:
        algo = self.algo
        stage1 = {} if self.critic_ready else await self.train_critic()
        episodes = await self._guided(tasks, self.critic)
        # a failed episode counts as one failed episode, as in the plain path (its completed steps train)
        self._check_env_errors([e.error for e in episodes])
        rows: list[Trajectory] = []
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
            "rollout/env_errors": float(sum(e.error is not None for e in episodes)),
            "cgi/changed_by_critique": sum(
                sum(c != r.turns[0].action for c, r in zip(e.candidates, e.refined_rows, strict=True))
                for e in episodes
            )
            / max(sum(len(e.candidates) for e in episodes), 1),
            **stage1,
        }
        return rows, metrics

    def loss(
        self,
        logp: torch.Tensor,
        batch: MicroBatch,
        *,
        ref_logp: torch.Tensor | None,
        entropy: torch.Tensor | None,
        norm: Normalizers,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss, metrics = super().loss(logp, batch, ref_logp=ref_logp, entropy=entropy, norm=norm)
        if entropy is not None:
            metrics["loss/entropy"] = float(masked_mean(entropy.detach(), batch.loss_mask))
        return loss, metrics

    # -- the trained critic's state ----------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "critic_ready": self.critic_ready}

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        self.critic_ready = bool(state.get("critic_ready", self.critic_trainer is None))

    def save(self) -> Path:
        """The critic's checkpoint (same step) first, then the actor's, whose state.json marks both done."""
        if self.critic_trainer is not None:
            self.critic_trainer.step = self.step
            self.critic_trainer.save()
        return super().save()

    def resume(self, path: Path | None = None) -> bool:
        if not super().resume(path):
            return False
        if self.critic_trainer is not None:
            folder = self.critic_trainer.run_dir / "checkpoints" / f"step-{self.step:06d}"
            if not (folder / "state.json").exists():
                raise FileNotFoundError(
                    f"the actor resumed at step {self.step} but the critic has no checkpoint {folder}; "
                    "the run folder is incomplete (copy RUN/critic/ along with RUN/checkpoints/)"
                )
            self.critic_trainer.resume(folder)
            self.critic_trainer.module.eval()
        return True


register_algorithm("cgi", config=CGIConfig, trainer=CGITrainer)
