"""Multi-process training on torch.distributed: process group, model wrapping (DDP / FSDP2), collectives.

Launch any training config with `torchrun` (or `accelerate launch`, which calls it) and the trainer
runs data-parallel over the launched processes; without a launcher it is one process and nothing
here does anything:

    torchrun --nproc_per_node 8 -m palaestra.cli train configs/scale/1x8-colocated.yaml
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HEAD:29500 \
        -m palaestra.cli train configs/scale/4x8-split.yaml

How work is split (see `Trainer`):
    rollout   each rank rolls out a contiguous shard of the step's tasks (whole groups) with its own
              copy of the policy, then all ranks all-gather the trajectories, so every rank holds the
              whole step batch in task order and computes the same advantages, filters and metrics.
              Rolling out on every rank (rather than on rank 0 and scattering) uses every GPU for
              generation, the dominant cost, and needs no extra sync: the gathered records are
              tokens, logprobs and rewards, small next to a weight broadcast.
    update    every rank builds the same micro-batches from the gathered batch; micro-batch i is
              trained on rank i mod world_size; a rank with fewer micro-batches in a mini-batch
              runs zero-weighted copies so every rank makes the same number of forward/backward
              passes (FSDP2 all-gathers in each one). Loss normalisers count the whole mini-batch
              and each rank's loss is scaled by world_size (DDP and FSDP2 average gradients), so one
              optimizer step equals the single-process step on the same batch.

Strategies (`distributed.strategy`):
    ddp    `DistributedDataParallel`: full replicas, gradients all-reduced; small models, LoRA.
    fsdp   FSDP2 `fully_shard` on every decoder layer and the root: parameters, gradients and
           optimizer state sharded across ranks. Generation needs whole weights without
           collectives, so each rank keeps an unsharded copy for rollouts, refreshed from the
           sharded weights after every update (the vLLM backend holds that copy in its engine).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DistContext",
    "DistributedConfig",
    "all_gather_objects",
    "broadcast_object",
    "full_model_state",
    "gradient_sync",
    "init_distributed",
    "shard_range",
    "wrap_model",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class DistributedConfig(BaseModel):
    """How the trainer runs when launched with several processes (torchrun / accelerate launch)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="ddp: full replicas, gradients all-reduced (small models, LoRA); fsdp: FSDP2 "
        "sharding of parameters, gradients and optimizer state (models that do not fit one device).",
    )
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="torch.distributed backend; auto: nccl on CUDA devices, gloo on CPU."
    )
    timeout_minutes: float = Field(
        60.0,
        gt=0,
        description="Collective timeout; other ranks wait this long while rank 0 evaluates or saves.",
    )


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: its rank, the world size, and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    strategy: Literal["ddp", "fsdp"] = "ddp"

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(config: DistributedConfig, device: str) -> tuple[DistContext, torch.device]:
    """Join the process group when launched by torchrun; return the context and this rank's device.

    An already initialised process group is used as it is (tests, or a caller that set it up).
    Without a launcher and without a process group this is one process: rank 0 of 1.

    Args:
        config: the `distributed` config section.
        device: `model.device` from the config; "cuda" becomes "cuda:LOCAL_RANK" per process.
    """
    if not dist.is_initialized() and dist.is_torchelastic_launched():
        backend = config.backend
        if backend == "auto":
            backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=dt.timedelta(minutes=config.timeout_minutes))
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return DistContext(strategy=config.strategy), torch.device(device)
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = dist.get_node_local_rank(fallback_rank=rank)
    target = torch.device(device)
    if target.type == "cuda":
        target = torch.device("cuda", local_rank)
        torch.cuda.set_device(target)
    logger.info("rank %d of %d on %s (%s)", rank, world, target, config.strategy)
    return DistContext(rank, world, local_rank, config.strategy), target


def _decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks to shard one by one: HF's `_no_split_modules` classes (e.g. LlamaDecoderLayer)."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(
            f"distributed.strategy=fsdp found no decoder layers in {type(model).__name__} (no "
            "`_no_split_modules`); use distributed.strategy=ddp for this model"
        )
    return layers


def wrap_model(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """Wrap `model` for data-parallel training; returns what the training forward pass calls.

    ddp: a `DistributedDataParallel` around `model` (whose parameters it shares); fsdp: `model` itself,
    sharded in place by `fully_shard` (layer by layer, then the root with the embeddings and head).
    Every rank must pass identical initial weights (the same checkpoint, or the same seed).
    """
    if not ctx.enabled:
        return model
    if ctx.strategy == "ddp":
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # buffers (rotary tables) are constant: syncing them would add a collective per forward
        # (the option's name changed in torch 2.13)
        params = inspect.signature(DistributedDataParallel).parameters
        no_buffer_sync: dict[str, Any] = {
            "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": False
        }
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, **no_buffer_sync)
    from torch.distributed.fsdp import fully_shard

    for layer in _decoder_layers(model):
        fully_shard(layer)
    fully_shard(model)
    return model


@contextlib.contextmanager
def gradient_sync(model: torch.nn.Module, ctx: DistContext, *, sync: bool) -> Iterator[None]:
    """Accumulate gradients locally (`sync=False`) or reduce them in this backward (`sync=True`)."""
    from torch.distributed.fsdp import FSDPModule
    from torch.nn.parallel import DistributedDataParallel

    if not ctx.enabled:
        yield
    elif ctx.strategy == "ddp":
        assert isinstance(model, DistributedDataParallel), f"expected `wrap_model`'s DDP, got {type(model)}"
        with contextlib.nullcontext() if sync else model.no_sync():
            yield
    else:
        assert isinstance(model, FSDPModule), f"expected `wrap_model`'s FSDP2 module, got {type(model)}"
        model.set_requires_gradient_sync(sync)
        yield


def full_model_state(model: torch.nn.Module, *, rank0_only: bool = False) -> dict[str, torch.Tensor]:
    """The whole (unsharded) state dict of a possibly wrapped model, keys without wrapper prefixes.

    Every rank must call it (it all-gathers FSDP shards). With `rank0_only`, only rank 0 receives the
    tensors (on CPU) and the others get an empty dict.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=rank0_only)
    # full_state_dict: plain tensors (torch types the values as any state-dict value)
    return get_model_state_dict(model, options=options)  # type: ignore[return-value]


def shard_range(n: int, ctx: DistContext) -> tuple[int, int]:
    """[start, end) of this rank's contiguous share of `n` items (the first n % world ranks get one more)."""
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    return start, start + base + (ctx.rank < extra)


def all_gather_objects(obj: T, ctx: DistContext) -> list[T]:
    """Every rank's `obj` (picklable), in rank order; `[obj]` in one process."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, ctx: DistContext, src: int = 0) -> T:
    """Rank `src`'s `obj` on every rank."""
    if not ctx.enabled:
        return obj
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
