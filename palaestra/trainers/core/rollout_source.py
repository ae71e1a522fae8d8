"""Where a trainer's rollouts come from, and how the trained weights reach them.

The trainer asks its rollout source for trajectories (`run(tasks, config)`) and hands it the trained
model after every update (`sync_weights(model)`). Two sources share that interface:

- `LocalRollouts`: the policy runs in the trainer's process. The hf backend shares the trainer's model
  object (nothing to copy); the vllm backend is an in-process engine started from the initial weights
  that loads each update in place (LoRA merged first).
- `RayRollouts` (`core/ray_source.py`, `rollout.ray` in the config): rollout workers on a Ray cluster,
  each owning a backend; the weights travel through Ray's object store.

Every source also has a local `policy` in the trainer's process, which evaluation and the algorithms
that generate outside the plain group rollout (critiques, expert patching, self-play) use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.model_setup import trained_weights, vllm_options

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from palaestra.agents.base import Policy
    from palaestra.config import TrainConfig

__all__ = ["LocalRollouts", "RolloutSource", "make_rollout_source"]


class RolloutSource(Protocol):
    """What the trainer rolls out with (see module docstring)."""

    policy: Policy

    async def run(self, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
        """`group_size` samples of every task, ordered by (task, sample)."""
        ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the next rollouts use `model`'s weights (the unsharded rollout model)."""
        ...

    def release_memory(self) -> None:
        """Free generation memory for the update (vllm sleep mode); a no-op elsewhere."""
        ...

    def close(self) -> None:
        """Stop whatever the source started (engines, workers)."""
        ...


class LocalRollouts:
    """Rollouts in the trainer's process with the trainer's own policy.

    Args:
        policy: the backend (an `HFPolicy` over the trainer's model, or a `VLLMPolicy`).
        shares_model: whether the policy generates with the trainer's model object (hf): then a sync
            copies nothing.
        lora: whether the trained model carries LoRA adapters (merged before a vllm load).
        sleep_mode: vllm: free the engine's memory during updates.
    """

    def __init__(self, policy: Policy, *, shares_model: bool, lora: bool, sleep_mode: bool = False):
        self.policy = policy
        self.shares_model = shares_model
        self.lora = lora
        self.sleep_mode = sleep_mode

    async def run(self, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
        runner = RolloutRunner(self.policy, config)
        try:
            return await runner.run(tasks)
        finally:
            runner.close()

    def sync_weights(self, model: torch.nn.Module) -> None:
        if self.shares_model:
            self.policy.sync_weights()  # type: ignore[attr-defined]
        else:
            self.policy.sync_weights(trained_weights(model, lora=self.lora))  # type: ignore[attr-defined]

    def release_memory(self) -> None:
        if self.sleep_mode:
            self.policy.release_memory()  # type: ignore[attr-defined]

    def close(self) -> None:
        close_sync = getattr(self.policy, "close_sync", None)
        if close_sync is not None:
            close_sync()


def make_rollout_source(
    config: TrainConfig,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    export: Callable[[Path], Path],
    *,
    distributed: bool = False,
) -> RolloutSource:
    """The rollout source a config asks for.

    Args:
        config: the run's configuration (`agent` picks the backend, `rollout.ray` the Ray workers).
        model: the unsharded rollout model (shared with the trainer under the hf backend).
        tokenizer: its tokenizer.
        export: saves the current policy as an HF folder (for vLLM engines, which load from disk).
        distributed: whether this is one of several trainer processes (torchrun).

    Raises:
        ValueError: `rollout.ray` in a multi-process run.
    """
    from palaestra.agents.hf import HFPolicy

    agent, lora = config.agent, config.model.lora is not None
    hf = HFPolicy(
        model,  # type: ignore[arg-type]  # with LoRA a PeftModel, which forwards the HF model's API
        tokenizer,
        name=f"hf:{config.model.name}",
        max_batch_size=agent.max_batch_size,
        sampler=agent.sampler,
    )
    if config.rollout.ray is not None:
        if distributed:
            raise ValueError(
                "rollout.ray with several trainer processes (torchrun) is not supported: every rank "
                "would start its own workers; train in one process (FSDP/DDP off) or remove rollout.ray"
            )
        from palaestra.trainers.core.ray_source import RayRollouts

        return RayRollouts(config, hf, export)
    if agent.backend == "vllm":
        return LocalRollouts(
            _vllm_policy(config, export), shares_model=False, lora=lora, sleep_mode=agent.sleep_mode
        )
    return LocalRollouts(hf, shares_model=True, lora=lora)


def _vllm_policy(config: TrainConfig, export: Callable[[Path], Path]) -> Policy:
    """A vLLM engine on the initial weights (exported as an HF folder, so any model loads)."""
    from palaestra.agents.vllm_backend import VLLMPolicy

    folder = export(config.run.run_dir / "vllm-init")
    return VLLMPolicy.from_model(str(folder), **vllm_options(config), name=f"vllm:{config.model.name}")
