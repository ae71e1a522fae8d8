"""GiGPO: group-in-group policy optimisation, step-level credit from anchor states (docs/algorithms.md §7).

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
    * `step_rewards="progress"`: SPA-RL (§8) step rewards from a learned progress estimator feed R_t
      (see `trainers/spa.py`); A^E keeps the env's episode returns. `progress_estimator`: "head" (a
      linear head on the policy's logits) or "model" (the paper's separate LM + head, initialised from
      `progress_model` or a copy of the policy's initial weights, own optimizer and checkpoints).

Departures from `trainers/core`: per-token advantages (one value per turn) instead of one per episode.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.advantages import (
    anchor_groups,
    discounted_returns,
    group_advantages,
    turn_token_advantages,
)
from palaestra.trainers.core.batching import Advantages
from palaestra.trainers.core.model_setup import hf_model
from palaestra.trainers.grpo import (
    DynamicSamplingOptions,
    GroupNormOptions,
    GRPOTrainer,
    OverlongOptions,
    PolicyLossOptions,
)
from palaestra.trainers.registry import register_algorithm
from palaestra.trainers.spa import (
    HeadProgress,
    ProgressEstimator,
    ProgressModel,
    StepProgress,
    progress_step_rewards,
    turn_ends,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from palaestra.config import TrainConfig

__all__ = ["GiGPOConfig", "GiGPOTrainer", "anchor_metrics", "gigpo_advantages", "turn_anchors"]


class GiGPOConfig(OverlongOptions, DynamicSamplingOptions, PolicyLossOptions, GroupNormOptions):
    """GiGPO options, on top of GRPO's loss and sampling options (paper defaults in configs/gigpo.yaml).

    Not GRPO's `singleton` (singleton anchor groups get A^S = 0, singleton task groups their raw return,
    as the code) nor `overlong: penalty` (the step returns come from the step rewards).
    """

    earlier_defaults: ClassVar[dict[str, Any]] = {"singleton": "raw"}
    unsupported: ClassVar[dict[str, str]] = {
        "singleton": "GiGPO gives singleton anchor groups A^S = 0 and singleton task groups their raw return"
    }

    name: Literal["gigpo"] = "gigpo"
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
    step_rewards: Literal["env", "progress"] = Field(
        "env",
        description="Step rewards of R_t: the env's, or SPA-RL progress α·ĉ_t + β·g_t (trainers/spa.py).",
    )
    progress_alpha: float = Field(1.0, description="SPA-RL α, weight of the estimated contribution ĉ_t.")
    progress_beta: float = Field(1.0, description="SPA-RL β, weight of the grounding reward g_t.")
    progress_estimator: Literal["head", "model"] = Field(
        "head",
        description="SPA-RL estimator: a linear head on the policy's logits, or a separate LM with the head "
        "(paper).",
    )
    progress_lr: float = Field(1e-3, gt=0, description="Adam learning rate of the progress head.")
    progress_fit_iters: int = Field(20, ge=1, description="Adam steps fitting the progress head per RL step.")
    progress_model: str | None = Field(
        None,
        description="Estimator LM's initial weights (model name or path, same tokenizer as the policy); None: "
        "a copy of the policy's initial model.",
    )
    progress_model_lr: float = Field(1e-5, gt=0, description="AdamW learning rate of the estimator LM.")
    progress_model_iters: int = Field(
        1, ge=1, description="Estimator LM optimizer steps per RL step (each over all the step's episodes)."
    )

    @model_validator(mode="after")
    def _no_overlong_penalty(self) -> GiGPOConfig:
        if self.overlong == "penalty":
            raise ValueError(
                "overlong=penalty is not honoured by gigpo: its advantages come from the step rewards, which "
                "the length penalty does not reach; use overlong=filter or off"
            )
        return self


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
    episode_returns: Sequence[float] | None = None,
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
        episode_returns: per episode, R(τ) for A^E (None: the sum of `step_rewards`; SPA-RL passes the
            env's returns while `step_rewards` are progress rewards).

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
        total = float(sum(rewards)) if episode_returns is None else float(episode_returns[i])
        episode_scores.append(total - invalid_penalty * sum(bad))
        for t, ret in enumerate(discounted_returns(rewards, gamma)):
            flat_group.append(groups[i])
            flat_anchor.append(states[t])
            flat_return.append(ret - invalid_penalty * bad[t])
            flat_episode.append(total - invalid_penalty * bad[t])
            owner.append(i)
    normalise = partial(group_advantages, scale_by_std=scale_by_std, eps=eps)
    if episode_stats == "trajectories":
        per_episode = normalise(episode_scores, list(groups), singleton="raw")
        a_episode = per_episode[torch.as_tensor(owner, dtype=torch.long)] if owner else per_episode[:0]
    else:
        a_episode = normalise(flat_episode, flat_group, singleton="raw")
    cluster = anchor_groups(flat_anchor, flat_group, similarity=similarity)
    a_step = normalise(flat_return, cluster, singleton="zero")
    combined = (a_episode + step_weight * a_step).tolist()
    out: list[list[float]] = [[] for _ in range(n)]
    for i, value in zip(owner, combined, strict=True):
        out[i].append(value)
    return out


def anchor_metrics(
    step_rewards: Sequence[Sequence[float]],
    anchors: Sequence[Sequence[str]],
    groups: Sequence[Hashable],
    *,
    gamma: float,
    similarity: float | None = None,
) -> dict[str, float]:
    """Diagnostics of the step-level signal: how many anchor groups can give a non-zero A^S.

    Returns:
        `gigpo/anchor_groups` (clusters with >= 2 steps), `gigpo/anchor_groups_signal` (those whose
        discounted returns differ, i.e. with non-zero step advantages) and `gigpo/steps_with_signal`
        (fraction of all steps that lie in such a cluster).
    """
    flat_anchor, flat_group, flat_return = [], [], []
    for rewards, states, group in zip(step_rewards, anchors, groups, strict=True):
        flat_anchor += list(states)
        flat_group += [group] * len(states)
        flat_return += discounted_returns(rewards, gamma)
    members: dict[int, list[float]] = {}
    for cluster, ret in zip(
        anchor_groups(flat_anchor, flat_group, similarity=similarity), flat_return, strict=True
    ):
        members.setdefault(cluster, []).append(ret)
    shared = [r for r in members.values() if len(r) > 1]
    signal = [r for r in shared if max(r) - min(r) > 1e-9]
    return {
        "gigpo/anchor_groups": float(len(shared)),
        "gigpo/anchor_groups_signal": float(len(signal)),
        "gigpo/steps_with_signal": sum(len(r) for r in signal) / max(len(flat_return), 1),
    }


def turn_anchors(trajectory: Trajectory) -> list[str]:
    """The anchor state of each turn: the env observation the reply answered (no history, no system)."""
    first = next((m for m in trajectory.messages if m.get("role") != "system"), None)
    initial = first.get("content", "") if first is not None else ""
    if not isinstance(initial, str):  # multimodal parts: keep the text parts
        initial = " ".join(p.get("text", "") for p in initial if isinstance(p, dict))
    observations = [initial] + [turn.observation for turn in trajectory.turns[:-1]]
    return observations[: len(trajectory.turns)]


def _vocab_size(model: PreTrainedModel) -> int:
    """Rows of the model's output embedding (the LM head): the logits' width."""
    return int(model.get_output_embeddings().weight.shape[0])


class GiGPOTrainer(GRPOTrainer):
    """GRPO's sampling and loss with GiGPO's step-level advantages (see the module docstring)."""

    def __init__(self, config: TrainConfig, **kwargs: Any):
        algo = GiGPOConfig.of(config.algorithm)
        use_model = algo.step_rewards == "progress" and algo.progress_estimator == "model"
        given = kwargs.get("model")
        initial = (
            copy.deepcopy(given) if use_model and given is not None and algo.progress_model is None else None
        )
        super().__init__(config, **kwargs)
        self.progress: StepProgress | None = None
        if algo.step_rewards != "progress":
            return
        vocab = _vocab_size(hf_model(self.module))
        if use_model:
            self.progress = self._progress_model(initial, vocab)
        else:
            head = ProgressEstimator(vocab, lr=algo.progress_lr, fit_iters=algo.progress_fit_iters)
            self.progress = HeadProgress(head, self._turn_end_logits)

    @property
    def algo(self) -> GiGPOConfig:
        """This run's GiGPO options (`config.algorithm`)."""
        return GiGPOConfig.of(self.config.algorithm)

    def _progress_model(self, lm: torch.nn.Module | None, vocab: int) -> ProgressModel:
        """The separate estimator LM: `progress_model`, else a copy of the policy's initial weights."""
        from palaestra.agents.models import load_model

        algo = self.algo
        if lm is None:
            name = algo.progress_model or self.config.model.name
            lm = load_model(name, dtype=self.config.model.dtype, device=str(self.device))
        lm = hf_model(lm.to(self.device))
        got = _vocab_size(lm)
        if got != vocab:
            raise ValueError(
                f"algorithm.progress_model={algo.progress_model!r} has a vocabulary of {got} but the policy's has "
                f"{vocab}; the estimator reads the policy's token ids, so use a model with the policy's tokenizer"
            )
        return ProgressModel(
            lm,
            lr=algo.progress_model_lr,
            fit_iters=algo.progress_model_iters,
            max_grad_norm=self.config.optimizer.max_grad_norm,
            autocast=self.autocast,
        )

    @torch.no_grad()
    def _turn_end_logits(self, trajectory: Trajectory) -> torch.Tensor:
        """(T, V) the policy's logits at the last token of each reply (zeros for text-only turns)."""
        ends = turn_ends(trajectory)
        if ends is None:
            return torch.zeros(trajectory.num_turns, _vocab_size(hf_model(self.module)))
        was_training = self.model.training
        self.model.eval()
        ids = torch.tensor([trajectory.token_ids], device=self.device)
        keep = torch.tensor(ends, device=self.device)
        with self.autocast():
            logits = self.model(input_ids=ids, logits_to_keep=keep).logits[0]  # (T, V)
        self.model.train(was_training)
        return logits.float().cpu()

    def _progress_rewards(self, trajectories: list[Trajectory]) -> tuple[list[list[float]], float]:
        """SPA-RL step rewards from the estimator as it was; then fit it on this step's episodes.

        Returns:
            The step rewards and the estimator's fit error (`progress/mse`).
        """
        algo = self.algo
        assert self.progress is not None
        contributions = self.progress.predict(trajectories)
        rewards = [
            progress_step_rewards(
                c,
                [u.format_error is None for u in t.turns],
                alpha=algo.progress_alpha,
                beta=algo.progress_beta,
            )
            for c, t in zip(contributions, trajectories, strict=True)
        ]
        return rewards, self.progress.fit(trajectories, [t.reward for t in trajectories])

    def advantages(self, trajectories: list[Trajectory]) -> Advantages:
        algo = self.algo
        step_rewards = [t.step_rewards for t in trajectories]
        metrics: dict[str, float] = {}
        if self.progress is not None:
            step_rewards, metrics["progress/mse"] = self._progress_rewards(trajectories)
        per_turn = gigpo_advantages(
            step_rewards,
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
            episode_returns=[t.reward for t in trajectories],
        )
        metrics.update(
            anchor_metrics(
                step_rewards,
                [turn_anchors(t) for t in trajectories],
                [t.group_index for t in trajectories],
                gamma=algo.gamma,
                similarity=algo.similarity,
            )
        )
        values: list[float | list[float]] = [
            turn_token_advantages(t, adv) for t, adv in zip(trajectories, per_turn, strict=True)
        ]
        return Advantages(values, metrics)

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        if isinstance(self.progress, HeadProgress):
            state["progress_estimator"] = self.progress.head.state()
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        if isinstance(self.progress, HeadProgress):
            self.progress.head.load(state["progress_estimator"])

    @property
    def _progress_dir(self) -> Path:
        return self.run_dir / "progress" / "checkpoints"

    def save(self) -> Path:
        """The estimator LM's checkpoint (same step) first, then the policy's (whose state.json marks both)."""
        if isinstance(self.progress, ProgressModel):  # every rank calls it (replicated, written once)
            self.progress.save(self._progress_dir, self.step, keep=self.config.checkpoint.keep)
        return super().save()

    def resume(self, path: Path | None = None) -> bool:
        if not super().resume(path):
            return False
        if isinstance(self.progress, ProgressModel):
            folder = self._progress_dir / f"step-{self.step:06d}"
            if not (folder / "state.json").exists():
                raise FileNotFoundError(
                    f"the policy resumed at step {self.step} but the progress estimator has no checkpoint "
                    f"{folder}; copy RUN/progress/ along with RUN/checkpoints/"
                )
            self.progress.load(folder)
        return True


register_algorithm("gigpo", config=GiGPOConfig, trainer=GiGPOTrainer)
