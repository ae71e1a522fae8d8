"""Where a trainer's rollouts come from, and how the trained weights reach them.

The trainer asks its rollout source for trajectories (`run(tasks, config)`) and hands it the trained
model after every update (`sync_weights(model)`). Two sources share that interface:

- `LocalRollouts`: the policy runs in the trainer's process. The hf backend shares the trainer's model
  object (nothing to copy); the vllm backend is an in-process engine started from the initial weights
  that loads each update in place (LoRA merged first).
- `CopiedRollouts`: the asynchronous pipeline's local source (`rollout.pipeline=async`, hf backend):
  its episodes run on the producer's thread while the learner trains, so they generate with a copy of
  the model (never weights torn by an optimizer step); an update is cloned on the learner's thread and
  loaded on the producer's event loop between two generate calls.
- `RayRollouts` (`core/ray_source.py`, `rollout.ray` in the config): rollout workers on a Ray cluster,
  each owning a backend; the weights travel through Ray's object store.

Every source also has a local `policy` in the trainer's process, which evaluation and the algorithms
that generate outside the plain group rollout (critiques, expert patching, self-play) use, and a
`version`: the policy version (updates applied) its rollouts run with, recorded for every sampled token.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task, sync_policy
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.model_setup import merged_model, trained_weights, vllm_options

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from palaestra.agents.base import Policy
    from palaestra.agents.hf import HFPolicy
    from palaestra.config import TrainConfig

__all__ = ["CopiedRollouts", "LocalRollouts", "RolloutSource", "make_rollout_source"]


class RolloutSource(Protocol):
    """What the trainer rolls out with (see module docstring)."""

    policy: Policy
    version: int

    async def run(self, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
        """`group_size` samples of every task, ordered by (task, sample)."""
        ...

    def sync_weights(self, model: torch.nn.Module, *, version: int | None = None) -> None:
        """Make the next rollouts use `model`'s weights (the unsharded rollout model), policy `version`."""
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
        self.version = 0

    async def run(self, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
        runner = RolloutRunner(self.policy, config, version=lambda: self.version)
        try:
            return await runner.run(tasks)
        finally:
            runner.close()

    def sync_weights(self, model: torch.nn.Module, *, version: int | None = None) -> None:
        state = None if self.shares_model else trained_weights(model, lora=self.lora)
        sync_policy(self.policy, state, version)
        self.version = self.version if version is None else version

    def release_memory(self) -> None:
        if self.sleep_mode:
            self.policy.release_memory()  # type: ignore[attr-defined]

    def close(self) -> None:
        close_sync = getattr(self.policy, "close_sync", None)
        if close_sync is not None:
            close_sync()


class CopiedRollouts:
    """Local rollouts on a copy of the trained model, for a producer on another thread (module docstring).

    Args:
        policy: the trainer's own hf policy (evaluation and algorithms; shares the trainer's model).
        rollout_policy: the policy the episodes run with, over a copy of the model; it generates on its
            event loop's thread (`in_worker_thread=False`), where the weight loads run too.
        lora: whether the trained model carries LoRA adapters (merged into the copy's weights).
    """

    def __init__(self, policy: Policy, rollout_policy: HFPolicy, *, lora: bool):
        self.policy = policy
        self.rollout_policy = rollout_policy
        self.lora = lora
        self.version = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: tuple[dict[str, torch.Tensor], int | None] | None = None
        self._lock = threading.Lock()

    async def run(self, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
        self._loop = asyncio.get_running_loop()
        self._load_pending()  # weights sent while no loop ran
        runner = RolloutRunner(self.rollout_policy, config, version=lambda: self.version)
        try:
            return await runner.run(tasks)
        finally:
            runner.close()

    def sync_weights(self, model: torch.nn.Module, *, version: int | None = None) -> None:
        """Clone the trained weights now; load them on the rollouts' loop between generate calls.

        Without a running loop (before the producer starts, after it stopped) they are loaded at once.
        """
        state = {k: v.detach().clone() for k, v in trained_weights(model, lora=self.lora, full=False).items()}
        with self._lock:
            self._pending = (state, version)
        loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: the next run loads them
                loop.call_soon_threadsafe(self._load_pending)
                return
        self._load_pending()

    def _load_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
            if pending is not None:
                state, version = pending
                sync_policy(self.rollout_policy, state, version)
                self.version = self.version if version is None else version

    def release_memory(self) -> None:
        """The copy keeps its memory (it generates while the learner trains)."""

    def close(self) -> None:
        """Nothing to stop: the copy's batcher ends with the producer's event loop."""


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
    if config.rollout.pipeline == "async":
        return CopiedRollouts(hf, _copied_policy(hf, config, lora=lora), lora=lora)
    return LocalRollouts(hf, shares_model=True, lora=lora)


def _copied_policy(hf: HFPolicy, config: TrainConfig, *, lora: bool) -> HFPolicy:
    """An hf policy like `hf` over a frozen copy of its model (LoRA merged), generating on its loop."""
    from palaestra.agents.hf import HFPolicy

    merged: PreTrainedModel = merged_model(hf.model, lora=lora)
    # requires_grad stays as it is: frozen weights take another CPU matmul path, whose last bits
    # differ, and K = 0 must sample exactly what the synchronous trainer samples
    model = (merged if lora else copy.deepcopy(merged)).eval()
    return HFPolicy(
        model,
        hf.tokenizer,
        name=hf.name,
        max_batch_size=config.agent.max_batch_size,
        sampler=config.agent.sampler,
        in_worker_thread=False,
    )


def _vllm_policy(config: TrainConfig, export: Callable[[Path], Path]) -> Policy:
    """A vLLM engine on the initial weights (exported as an HF folder, so any model loads)."""
    from palaestra.agents.vllm_backend import VLLMPolicy

    folder = export(config.run.run_dir / "vllm-init")
    return VLLMPolicy.from_model(str(folder), **vllm_options(config), name=f"vllm:{config.model.name}")
