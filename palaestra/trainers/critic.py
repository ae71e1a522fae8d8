"""CGI Stage 1: supervised fine-tuning of a separate critic model on teacher critiques (docs/algorithms.md §6.2).

Paper: Yang et al., "The Lighthouse of Language: Enhancing LLM Agents via Critique-Guided Improvement"
(arXiv 2503.16024). The critic π_C is trained before the actor (Stage 1):

    1. roll out the actor to collect states and candidate actions;
    2. a teacher writes a critique of each candidate; critiques whose verdict disagrees with the env's
       are dropped (§6.2 step 2, `filter`);
    3. SFT of the critic on (critic prompt -> teacher critique):
       L = − (1/|tokens|) Σ log π_C(critique tokens | critic prompt)        token-mean NLL

The critic prompt is `rollout.critique.critic_messages` (task, candidate; no verdict, no reference), the
prompt the trained critic later answers in Stage 2 (`PolicyCritic` over the trained model). Teachers, for
want of the paper's GPT-4-class model: the rule critics built from the env's expert and feedback
(`ground_truth`: verdict + expert action, the default; `indicative`; `feedback`), or any `Policy` named by
an agent spec (`openai:MODEL`, `hf:PATH`, ...) that sees the expert answer as a reference.

`CriticTrainer` is the trainer core run as SFT on a second model: the same micro-batching, exact
gradient accumulation, optimizer, schedule, checkpoints and HF export as the actor's updates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from palaestra.rollout.chat import TokenChat
from palaestra.rollout.critique import Critic, CritiqueRequest, PolicyCritic, RuleCritic, critic_messages
from palaestra.rollout.trajectory import Trajectory, Turn
from palaestra.trainers.core.batching import Advantages, MicroBatch, Normalizers, StepBatch, collate
from palaestra.trainers.core.losses import masked_mean, token_mean
from palaestra.trainers.core.trainer import Trainer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from palaestra.config import TrainConfig

__all__ = [
    "RULE_TEACHERS",
    "CriticTrainer",
    "CriticTrainingConfig",
    "SupervisedTrainer",
    "critique_rows",
    "critique_verdict",
    "sft_loss",
    "teacher_critic",
]

RULE_TEACHERS = ("ground_truth", "indicative", "feedback")
"""Teachers that need no model: `RuleCritic` kinds."""


class CriticTrainingConfig(BaseModel):
    """CGI Stage 1 options (`algorithm.critic_training`, used with `algorithm.critic: trained`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    init: str | None = Field(
        None,
        description="Critic's initial weights (model name or path); None: a copy of the actor's initial model.",
    )
    teacher: str = Field(
        "ground_truth",
        description="Who writes the training critiques: a rule critic (ground_truth | indicative | feedback) "
        "or an agent spec (openai:MODEL, hf:PATH, ...) shown the expert answer as reference.",
    )
    teacher_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the teacher's backend (agents/spec.make_policy)."
    )
    filter: bool = Field(True, description="Drop critiques whose verdict disagrees with the env's (§6.2).")
    rounds: int = Field(1, ge=0, description="Stage-1 rounds (roll out, critique, SFT) before Stage 2.")
    tasks_per_round: int | None = Field(
        None, ge=1, description="Tasks per round (None: rollout.tasks_per_step)."
    )
    epochs: int = Field(3, ge=1, description="Passes over each round's critique data.")
    mini_batches: int = Field(1, ge=1, description="Optimizer steps per pass.")
    lr: float = Field(
        1e-5, gt=0, description="Critic learning rate (AdamW, the optimizer section's other settings)."
    )
    max_new_tokens: int = Field(128, ge=1, description="Stage 2: critique length budget.")
    temperature: float = Field(0.7, ge=0, description="Stage 2: critique sampling temperature.")

    @field_validator("teacher")
    @classmethod
    def _known_teacher(cls, value: str) -> str:
        if value not in RULE_TEACHERS and ":" not in value:
            raise ValueError(
                f"teacher={value!r}; expected a rule critic ({', '.join(RULE_TEACHERS)}) or an agent spec "
                "BACKEND:TARGET such as openai:gpt-4o or hf:/models/teacher"
            )
        return value


def teacher_critic(spec: CriticTrainingConfig) -> Critic:
    """The Stage-1 teacher: a rule critic, or a model critic that sees the expert answer."""
    if spec.teacher in RULE_TEACHERS:
        return RuleCritic(spec.teacher)  # type: ignore[arg-type]
    from palaestra.agents.spec import make_policy

    return PolicyCritic(make_policy(spec.teacher, **spec.teacher_options), show_reference=True)


_CONCLUSION = re.compile(r"conclusion\s*:\s*\**\s*(right|wrong|correct|incorrect)", re.I)
_RULE_VERDICT = re.compile(r"solution is (correct|incorrect)", re.I)


def critique_verdict(critique: str) -> bool | None:
    """The critique's judgement of the attempt: True (right), False (wrong) or None (none stated).

    Reads the last "Conclusion: right|wrong" (model critics, `CRITIQUE_SYSTEM`), else the rule critics'
    "The generated solution is correct|incorrect".
    """
    found = _CONCLUSION.findall(critique) or _RULE_VERDICT.findall(critique)
    if not found:
        return None
    return found[-1].lower() in ("right", "correct")


def critique_rows(
    requests: Sequence[CritiqueRequest],
    critiques: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    *,
    filter: bool = True,
    env_id: str = "critique",
    agent: str = "teacher",
) -> list[Trajectory]:
    """Critic SFT rows: critic prompt -> teacher critique, as token sequences.

    Args:
        requests: what each critique judged (its `correct` is the env's verdict).
        critiques: the teacher's critique of each request.
        tokenizer: the critic's tokenizer (its chat template renders the prompt).
        filter: keep only critiques whose stated verdict (`critique_verdict`) is the env's.
        env_id: recorded as the rows' env id.
        agent: recorded as the rows' author.

    Returns:
        One row per kept critique: messages = `critic_messages(request)` + the critique as the assistant
        reply; `loss_mask` = 1 exactly on the critique's tokens and the end-of-turn token.
    """
    if len(requests) != len(critiques):
        raise ValueError(f"{len(requests)} critique requests but {len(critiques)} critiques")
    chat = TokenChat(tokenizer)
    close = list(tokenizer(chat.reply_close_text, add_special_tokens=False)["input_ids"])[:1]
    rows: list[Trajectory] = []
    for i, (request, critique) in enumerate(zip(requests, critiques, strict=True)):
        if filter and critique_verdict(critique) != request.correct:
            continue
        messages = critic_messages(request)
        prompt = chat.prompt_ids(messages)
        target = list(tokenizer(critique, add_special_tokens=False)["input_ids"]) + close
        row = Trajectory(
            env_id=env_id,
            seed=i,
            sample_index=len(rows),
            agent=agent,
            messages=[*messages, {"role": "assistant", "content": critique}],
            token_ids=prompt + target,
            loss_mask=[0] * len(prompt) + [1] * len(target),
            logprobs=[0.0] * (len(prompt) + len(target)),
            prompt_length=len(prompt),
        )
        info = {"correct": request.correct, "critique": True}
        row.turns = [Turn(critique, "", 0.0, True, False, info, "stop", (len(prompt), len(row.token_ids)))]
        rows.append(row)
    return rows


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


def critic_train_config(config: TrainConfig, spec: CriticTrainingConfig) -> TrainConfig:
    """The critic's run config: the actor's, with the critic's model, learning rate, passes and steps.

    Checkpoints go to RUN/critic/; the critic generates through the hf backend.
    """
    # steps = Stage-1 rounds: the LR schedule spans the critic's own optimizer steps
    run = config.run.model_copy(
        update={"output_dir": config.run.run_dir, "name": "critic", "steps": max(1, spec.rounds)}
    )
    return config.model_copy(
        update={
            "run": run,
            "model": config.model.model_copy(update={"name": spec.init or config.model.name}),
            "agent": config.agent.model_copy(update={"backend": "hf", "sleep_mode": False}),
            "rollout": config.rollout.model_copy(update={"temperature": 1.0}),  # NLL at T = 1
            "optimizer": config.optimizer.model_copy(update={"lr": spec.lr}),
            "algorithm": config.algorithm.model_copy(
                update={"epochs": spec.epochs, "mini_batches": spec.mini_batches}
            ),
        }
    )


class SupervisedTrainer(Trainer):
    """The trainer core with a supervised objective: every policy token has weight 1, loss = `sft_loss`."""

    def advantages(self, trajectories: list[Trajectory]) -> Advantages:
        return Advantages([1.0] * len(trajectories))

    def loss(
        self,
        logp: torch.Tensor,
        batch: MicroBatch,
        *,
        ref_logp: torch.Tensor | None,
        entropy: torch.Tensor | None,
        norm: Normalizers,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return sft_loss(logp, batch.loss_mask, total_tokens=norm["tokens"])


class CriticTrainer(SupervisedTrainer):
    """SFT of a critic model with the trainer core's update (see the module docstring).

    Args:
        config: the actor's run config (`critic_train_config` derives the critic's).
        spec: the Stage-1 options.
        model: the critic's initial model (None: load `spec.init`, else the actor's `model.name`).
        tokenizer: its tokenizer (required with `model`).
    """

    def __init__(
        self,
        config: TrainConfig,
        spec: CriticTrainingConfig,
        *,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ):
        super().__init__(critic_train_config(config, spec), model=model, tokenizer=tokenizer)
        self.spec = spec

    def fit(self, rows: list[Trajectory]) -> dict[str, float]:
        """`epochs` x `mini_batches` optimizer steps on critique rows; returns `critic/...` metrics."""
        if not rows:
            return {"critic/rows": 0.0}
        metrics = self.update(StepBatch(rows, self.advantages(rows).values))
        self.sync_rollout_weights()
        self.module.eval()  # the critic now generates (Stage 2)
        return {"critic/rows": float(len(rows)), **{f"critic/{k}": v for k, v in metrics.items()}}

    @torch.no_grad()
    def nll(self, rows: Sequence[Trajectory]) -> float:
        """Token-mean NLL of the critique tokens of `rows` under the current critic."""
        was_training = self.module.training
        self.module.eval()
        total, count = 0.0, 0
        for row in rows:
            batch = collate([StepBatch([row], [1.0]).rows()[0]], self.pad_id).to(self.device)
            logp, _ = self.forward_logp(self.module, batch, with_entropy=False)
            total += float((-logp * batch.loss_mask).sum())
            count += batch.num_tokens
        self.module.train(was_training)
        return total / max(count, 1)
