"""Supervised fine-tuning on expert demonstrations (behaviour cloning), on the trainer core.

Demonstrations (`palaestra demos` -> demos.parquet, episodes played by an env's scripted expert from
`info["expert_action"]`) are chats. `demo_rows` turns each into exactly the token sequence a rollout of
the policy would hold (`TokenChat`, as `RolloutRunner` builds it): the first prompt, then each expert
reply plus its end-of-turn token, then the template delta of the env's next message, ... The loss mask
is 1 on the expert's reply tokens only, so

    L = − (1/|tokens|) Σ log π_θ(expert reply tokens | history)        token-mean NLL (`critic.sft_loss`)

`SFTTrainer` is the trainer core run as SFT (as `CriticTrainer` and `CGITrainer` are): the same
micro-batching, exact gradient accumulation, optimizer, LR schedule and HF export as RL updates. Its use
here: warm-starting a policy to a partial success rate before RL (`benchmarks/algorithms.py
--warm-start-sft`), so that RL groups hold both successes and failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from palaestra.agents.base import message_text
from palaestra.rollout.chat import TokenChat
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.batching import StepBatch
from palaestra.trainers.critic import SupervisedTrainer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from palaestra.config import TrainConfig

__all__ = ["SFTTrainer", "demo_rows", "sft_train_config"]


def demo_rows(demos: Sequence[Trajectory], tokenizer: PreTrainedTokenizerBase) -> list[Trajectory]:
    """Token-exact SFT rows of demonstrations: loss on the expert's replies, as a rollout would hold them.

    Args:
        demos: demonstrations (e.g. `rollout.storage.load_trajectories(".../demos.parquet")`); only
            their `messages` are read.
        tokenizer: the policy's tokenizer (its chat template renders the prompts).

    Returns:
        One row per demo with at least one assistant reply: `token_ids`, `loss_mask` (1 exactly on the
        reply tokens and each reply's end-of-turn token), zero `logprobs`, `prompt_length`.

    Raises:
        ValueError: a demo whose chat does not start with system/user messages.
    """
    chat = TokenChat(tokenizer)
    close = list(tokenizer(chat.reply_close_text, add_special_tokens=False)["input_ids"])[:1]
    rows: list[Trajectory] = []
    for demo in demos:
        messages = list(demo.messages)
        first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), None)
        if first is None:
            continue
        if first == 0:
            raise ValueError(
                f"demo {demo.env_id} seed {demo.seed} starts with an assistant reply; expected the env's "
                "first observation (system/user messages) before it"
            )
        row = Trajectory(
            env_id=demo.env_id,
            seed=demo.seed,
            sample_index=len(rows),
            agent=demo.agent,
            messages=messages,
            success=demo.success,
        )
        prompt = chat.prompt_ids(messages[:first])
        ids, mask = list(prompt), [0] * len(prompt)
        reply: list[int] = []
        pending: list[Any] = []
        for message in messages[first:]:
            if message["role"] != "assistant":
                pending.append(message)
                continue
            if pending:  # env messages between two replies: the template delta, as the runner appends it
                for env_msg in pending:
                    delta = chat.continuation_ids(reply, [env_msg])
                    ids += delta
                    mask += [0] * len(delta)
                    reply = []  # closed by the first delta
                pending = []
            reply = list(tokenizer(message_text(message), add_special_tokens=False)["input_ids"]) + close
            ids += reply
            mask += [1] * len(reply)
        row.token_ids, row.loss_mask = ids, mask
        row.logprobs = [0.0] * len(ids)
        row.prompt_length = len(prompt)
        rows.append(row)
    return rows


def sft_train_config(config: TrainConfig, *, steps: int, lr: float, name: str = "sft") -> TrainConfig:
    """The SFT run's config: `config` with `steps` optimizer steps at `lr`, one pass per step, no KL.

    Output goes to RUN_DIR/`name` (RUN_DIR: `config`'s run folder); generation (evaluation) uses hf.
    """
    run = config.run.model_copy(update={"output_dir": config.run.run_dir, "name": name, "steps": steps})
    algorithm = config.algorithm.model_copy(update={"epochs": 1, "mini_batches": 1})
    return config.model_copy(
        update={
            "run": run,
            "agent": config.agent.model_copy(update={"backend": "hf", "sleep_mode": False}),
            "rollout": config.rollout.model_copy(update={"temperature": 1.0}),  # NLL at T = 1
            "optimizer": config.optimizer.model_copy(update={"lr": lr}),
            "algorithm": algorithm,
        }
    )


class SFTTrainer(SupervisedTrainer):
    """Behaviour cloning of demonstration rows with the trainer core's update (module docstring).

    Args:
        config: a run config (`sft_train_config` derives the SFT run's: steps, lr, output folder).
        steps: optimizer steps of `fit`.
        lr: learning rate (AdamW with the config's other optimizer settings; its LR schedule).
        batch_size: demo rows per optimizer step.
        model: the initial model (None: load `config.model.name`).
        tokenizer: its tokenizer (required with `model`).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        steps: int,
        lr: float = 1e-3,
        batch_size: int = 8,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ):
        if steps < 1 or batch_size < 1:
            raise ValueError(f"steps={steps}, batch_size={batch_size}; both must be >= 1")
        super().__init__(sft_train_config(config, steps=steps, lr=lr), model=model, tokenizer=tokenizer)
        self.batch_size = batch_size

    def fit(self, rows: Sequence[Trajectory]) -> list[dict[str, float]]:
        """`config.run.steps` optimizer steps on batches of `rows` drawn without replacement per pass.

        Returns:
            Each step's metrics (`loss/nll`, `update/grad_norm`, ...).

        Raises:
            ValueError: no row has a reply token to imitate.
        """
        rows = [r for r in rows if any(r.loss_mask)]
        if not rows:
            raise ValueError("no demo row has expert reply tokens; collect demos with `palaestra demos`")
        gen = torch.Generator().manual_seed(self.config.run.seed)
        order: list[int] = []
        history = []
        while self.step < self.config.run.steps:
            if len(order) < self.batch_size:
                order += torch.randperm(len(rows), generator=gen).tolist()
            chosen = [rows[i] for i in order[: self.batch_size]]
            del order[: self.batch_size]
            history.append(self.update(StepBatch(chosen, self.advantages(chosen).values)))
            self.step += 1
        self.sync_rollout_weights()
        self.module.eval()
        return history
