"""Train with TRL's `GRPOTrainer` on any palaestra env, local or served.

TRL's `GRPOTrainer(rollout_func=...)` hands a function each batch's prompts and the trainer, and trains
on the token ids the function returns. `TRLRollout` is that function for palaestra envs: each prompt of
the dataset `task_dataset` builds names one task (env id, env kwargs, reset seed), and the rollout plays
the task's whole multi-turn episode with the trainer's model through palaestra's own episode driver and
token-exact chat (`rollout/runner.py`, `rollout/chat.py`). Per prompt it returns:

    prompt_ids      the first prompt: the env's system prompt and first observation, chat template applied
    completion_ids  every reply and every env message after it, in order (the exact sampled ids)
    env_mask        1 on sampled reply tokens, 0 on env messages: TRL's loss skips the env's tokens
    logprobs        the sampler's logprob of each reply token (0.0 on env tokens)
    env_reward      the episode's return (sum of step rewards); None for a failed episode, which TRL
                    leaves out of its group's baseline and gives advantage 0 (never a silent reward 0),
                    and whose tokens are all masked

`env_reward`, the reward function, hands TRL that return, so the env is the only source of reward.

    from trl import GRPOConfig, GRPOTrainer
    from palaestra.integrations.trl import TRLRollout, env_reward, task_dataset
    from palaestra.rollout import Task

    tasks = [Task("palaestra/Math-ArithRetry-v0", seed) for seed in range(256)]
    trainer = GRPOTrainer(model=..., args=GRPOConfig(...), train_dataset=task_dataset(tasks),
                          rollout_func=TRLRollout(), reward_funcs=env_reward)

A task with a `server` (`Task(env_id, seed, server="ws://host:8765")`) runs on that `palaestra serve`
(or any OpenEnv server), a session per episode; any other gymnasium env factory
`(env_id, **env_kwargs) -> gym.Env` can stand in for `palaestra.make` (`env_factory=`).

TRL stays an optional dependency: it is imported only when a rollout runs (`pip install palaestra[trl]`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

import gymnasium as gym

from palaestra.agents.base import Message, SamplingParams
from palaestra.agents.hf import HFPolicy
from palaestra.envs.registration import env_card, make
from palaestra.rollout.chat import env_message, observation_text
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task, task_env
from palaestra.rollout.trajectory import Trajectory

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from trl import GRPOTrainer

__all__ = ["TASK_KEY", "TRLRollout", "env_reward", "task_dataset", "task_of", "trl_outputs"]

TASK_KEY = "palaestra_task"
"""The key of a prompt's first message that names its task (JSON of `Task`): TRL hands a rollout
function only the prompts, not the dataset's other columns."""

EnvFactory = Callable[..., gym.Env]
"""Builds an env from `(env_id, **env_kwargs)`, like `palaestra.make`."""


def _task_json(task: Task) -> str:
    try:  # every field of the task, so that fields added to `Task` travel too
        return json.dumps(asdict(task), sort_keys=True)
    except TypeError as exc:
        raise ValueError(
            f"task {task.env_id} seed={task.seed}: env_kwargs and options must be JSON values for a TRL "
            f"dataset ({exc})"
        ) from exc


def task_of(prompt: object) -> Task:
    """The task a prompt of `task_dataset` names.

    Raises:
        ValueError: the prompt names no task (it was not built by `task_dataset`).
    """
    if isinstance(prompt, list):
        for message in prompt:
            if isinstance(message, dict) and message.get(TASK_KEY):
                return Task(**json.loads(message[TASK_KEY]))
    raise ValueError(
        f"prompt {str(prompt)[:80]!r} names no palaestra task; build the train dataset with "
        "palaestra.integrations.trl.task_dataset"
    )


def _first_messages(task: Task, env_factory: EnvFactory) -> list[Message]:
    """The task's first chat, as an episode starts it: the env's system prompt and first observation."""
    env = task_env(task) if task.server else env_factory(task.env_id, **task.env_kwargs)
    try:
        observation, info = env.reset(seed=task.seed, options=task.options)
        system_prompt = getattr(env.unwrapped, "system_prompt", "")
    finally:
        env.close()
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    first = env_message(observation_text(observation), info.get("role", "user"))
    return [*messages, first]


def task_dataset(
    tasks: Sequence[Task], *, env_factory: EnvFactory | None = None, render: bool = True
) -> Dataset:
    """A TRL train dataset with one conversational prompt per task.

    Args:
        tasks: the tasks to train on; `GRPOConfig.num_generations` episodes of a task form one group.
        env_factory: builds each env (default `palaestra.make`); a task with a `server` always runs
            there, in a session of its own.
        render: the prompt is the task's first chat (each env is reset once here, so TRL's logs show what
            the model saw); False: a one-line label, which needs no env (many tasks, costly resets).

    Returns:
        A `datasets.Dataset` with a "prompt" column; its first message carries the task (`TASK_KEY`).
    """
    from datasets import Dataset

    if not tasks:
        raise ValueError("no tasks: task_dataset needs at least one Task")
    keys = [_task_json(task) for task in tasks]  # every task checked before any env is built
    if env_factory is None:  # a served task's id is its server's to check
        for env_id in sorted({task.env_id for task in tasks if not task.server}):
            env_card(env_id)  # an unknown id: UnknownEnvError, with "did you mean"
    factory = env_factory or make
    rows = []
    for task, key in zip(tasks, keys, strict=True):
        label = f"{task.env_id} seed={task.seed}"
        messages = _first_messages(task, factory) if render else [{"role": "user", "content": label}]
        messages = [{**m, TASK_KEY: None} for m in messages]
        messages[0][TASK_KEY] = key
        rows.append({"prompt": messages})
    return Dataset.from_list(rows)


def env_reward(
    env_reward: list[float | None], log_metric: Callable[[str, float], None] | None = None, **kwargs: Any
) -> list[float | None]:
    """TRL reward function: each episode's return, as the rollout recorded it (None: a failed episode).

    TRL passes the rollout's extra fields as keyword arguments; with its `log_metric`, the episodes'
    success rate, turns and failures are logged as `palaestra/success`, `palaestra/turns` and
    `palaestra/failed`.
    """
    if log_metric is not None:
        for name in ("success", "turns", "failed"):
            values = kwargs.get(f"env_{name}")
            if values:
                log_metric(f"palaestra/{name}", sum(float(v) for v in values) / len(values))
    return list(env_reward)


def trl_outputs(trajectories: Sequence[Trajectory], pad_id: int) -> dict[str, list[Any]]:
    """What a TRL rollout function returns for token-exact trajectories (see the module docstring).

    A failed episode's tokens are all masked (and its reward is None). An episode that produced no
    reply (its env failed to start, or the prompt filled the context) gets one masked pad token as its
    completion, since TRL needs a non-empty one.
    """
    keys = ["prompt_ids", "completion_ids", "logprobs", "env_mask"]
    keys += ["env_reward", "env_success", "env_turns", "env_failed"]
    out: dict[str, list[Any]] = {key: [] for key in keys}
    for traj in trajectories:
        traj.check()
        start = traj.prompt_length
        completion, mask, logprobs = traj.token_ids[start:], traj.loss_mask[start:], traj.logprobs[start:]
        if not completion:
            completion, mask, logprobs = [pad_id], [0], [0.0]
        if traj.error is not None:  # unscored: its tokens stay out of the loss and its normalisers
            mask = [0] * len(completion)
        out["prompt_ids"].append(traj.token_ids[:start] or [pad_id])
        out["completion_ids"].append(completion)
        out["env_mask"].append(mask)
        out["logprobs"].append(logprobs)
        out["env_reward"].append(None if traj.error else traj.reward)
        out["env_success"].append(traj.success)
        out["env_turns"].append(traj.num_turns)
        out["env_failed"].append(traj.error is not None)
    return out


def _group_indices(tasks: Sequence[Task]) -> list[tuple[int, int]]:
    """(group, sample) of each task: TRL repeats a prompt `num_generations` times, one group."""
    groups: dict[str, int] = {}
    counts: dict[str, int] = {}
    indices = []
    for task in tasks:
        key = _task_json(task)
        indices.append((groups.setdefault(key, len(groups)), counts.get(key, 0)))
        counts[key] = counts.get(key, 0) + 1
    return indices


class TRLRollout:
    """A `rollout_func` for TRL's `GRPOTrainer` that plays palaestra episodes with the trainer's model.

    Generation runs on the trainer's own model through palaestra's `hf` backend (the model is
    unwrapped with TRL's `unwrap_model_for_generation`, as TRL's own generation does), sampling with
    the trainer's `temperature`, `top_p` and `top_k`.

    Args:
        env_factory: builds an env from `(env_id, **env_kwargs)` (default `palaestra.make`); a task
            with a `server` always runs there.
        max_new_tokens: reply budget per turn (default: the trainer's `max_completion_length`).
        max_turns: cap on actions per episode on top of the env's own limit.
        max_context_tokens: end an episode whose next prompt would exceed this many tokens.
        env_executor: "inline", "thread" or "auto" (see `RolloutConfig`).
        step_timeout_s: per-step limit for env calls (needs `env_executor="thread"`).
        max_concurrency: episodes in flight at once.
        max_batch_size: most replies sampled in one forward pass.
        max_failed_fraction: raise when at least this fraction of a batch's episodes failed (env crash,
            step timeout); 1.0: only when all did. Failed episodes below it are unscored (reward None).

    Attributes:
        last_trajectories: the trajectories of the latest call, in prompt order.
    """

    def __init__(
        self,
        *,
        env_factory: EnvFactory | None = None,
        max_new_tokens: int | None = None,
        max_turns: int | None = None,
        max_context_tokens: int | None = None,
        env_executor: Literal["inline", "thread", "auto"] = "auto",
        step_timeout_s: float | None = None,
        max_concurrency: int = 64,
        max_batch_size: int = 32,
        max_failed_fraction: float = 1.0,
    ):
        if not 0 < max_failed_fraction <= 1:
            raise ValueError(f"max_failed_fraction={max_failed_fraction}; it must be in (0, 1]")
        self.max_failed_fraction = max_failed_fraction
        self.env_factory: EnvFactory = env_factory or make
        self.max_new_tokens = max_new_tokens
        self.max_batch_size = max_batch_size
        # validated now: a bad setting fails when the rollout is built, not in the first training step
        self._config = RolloutConfig(
            max_turns=max_turns,
            max_context_tokens=max_context_tokens,
            env_executor=env_executor,
            step_timeout_s=step_timeout_s,
            max_concurrency=max_concurrency,
        )
        self.last_trajectories: list[Trajectory] = []

    def rollout_config(self, trainer: GRPOTrainer) -> RolloutConfig:
        """The rollout settings with the trainer's sampling parameters.

        Raises:
            ValueError: the trainer asks for sampling palaestra's backend does not do (vLLM, min_p,
                repetition penalty).
        """
        if getattr(trainer, "use_vllm", False):
            raise ValueError(
                "TRLRollout samples with the trainer's model through palaestra's hf backend; "
                "set GRPOConfig(use_vllm=False)"
            )
        if getattr(trainer, "min_p", None) or getattr(trainer, "repetition_penalty", 1.0) != 1.0:
            raise ValueError(
                f"min_p={trainer.min_p}, repetition_penalty={trainer.repetition_penalty}: TRLRollout samples "
                "with temperature, top_p and top_k only; unset them in GRPOConfig"
            )
        max_new_tokens = self.max_new_tokens or trainer.max_completion_length
        if max_new_tokens is None:
            raise ValueError(
                "no reply budget: set GRPOConfig.max_completion_length or TRLRollout(max_new_tokens=)"
            )
        sampling = SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=trainer.temperature,
            top_p=trainer.top_p,
            top_k=trainer.top_k or 0,
        )
        return replace(self._config, sampling=sampling)

    def __call__(self, prompts: Sequence[list[Message]], trainer: GRPOTrainer) -> dict[str, list[Any]]:
        """Play one episode per prompt (TRL repeats each prompt once per generation of its group)."""
        tasks = [task_of(prompt) for prompt in prompts]
        config = self.rollout_config(trainer)
        tokenizer = _tokenizer(trainer)
        with _generation_model(trainer) as model:
            policy = HFPolicy(model, tokenizer, name="trl", max_batch_size=self.max_batch_size)
            trajectories = asyncio.run(self._play(policy, tasks, config))
        self.last_trajectories = trajectories
        self._check_failures(trajectories)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return trl_outputs(trajectories, int(pad_id))

    def _check_failures(self, trajectories: Sequence[Trajectory]) -> None:
        failed = [t.error for t in trajectories if t.error is not None]
        if failed and len(failed) / len(trajectories) >= self.max_failed_fraction:
            first = failed[0].partition("\n")[0]
            raise RuntimeError(
                f"{len(failed)} of {len(trajectories)} episodes failed (max_failed_fraction="
                f"{self.max_failed_fraction:g}); first: {first}"
            )

    async def _play(self, policy: HFPolicy, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
        runner = RolloutRunner(policy, config, self.env_factory)
        try:
            jobs = [
                partial(runner.run_episode, task, group_index=group, sample_index=sample)
                for task, (group, sample) in zip(tasks, _group_indices(tasks), strict=True)
            ]
            return await runner.driver.run_all(jobs)
        finally:
            runner.close()
            await policy.close()


def _tokenizer(trainer: GRPOTrainer) -> PreTrainedTokenizerBase:
    """The trainer's tokenizer (a processor's text tokenizer)."""
    from transformers import PreTrainedTokenizerBase

    processing = trainer.processing_class
    tokenizer = getattr(processing, "tokenizer", processing)
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise TypeError(f"the trainer's processing_class is {type(processing).__name__}, not a tokenizer")
    return tokenizer


@contextmanager
def _generation_model(trainer: GRPOTrainer) -> Iterator[PreTrainedModel]:
    """The trainer's model unwrapped for generation, as TRL's own generation does it."""
    from trl.models import unwrap_model_for_generation

    with unwrap_model_for_generation(
        trainer.model_wrapped,
        trainer.accelerator,
        # trainer.args is the GRPOConfig (typed as transformers' TrainingArguments)
        gather_deepspeed3_params=getattr(trainer.args, "ds3_gather_for_generation", True),
        gradient_checkpointing_kwargs=cast(
            "dict[str, Any] | None", trainer.args.gradient_checkpointing_kwargs
        ),
    ) as model:
        yield model
