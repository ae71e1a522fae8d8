"""Atomic, resumable checkpoints in torch.distributed.checkpoint (DCP) format, any world size.

A checkpoint is a folder `checkpoints/step-000010/`:

    .metadata, __*_*.distcp   DCP: trainable weights and optimizer state, each rank writing its shards
    trainer.pt                LR scheduler state (rank 0)
    rng-<rank>.pt             RNG states of each rank
    state.json                step and the trainer's own state (data cursor); written last

Tensors are keyed by their canonical names (no DDP / FSDP wrapper prefixes) and DCP reshards on load,
so a checkpoint written by N processes resumes with M processes, including M = 1 without any process
group. The folder is written under a temporary name and renamed when complete, so a run killed while
saving leaves the previous checkpoint intact and no half folder that looks valid. Rotation deletes only
checkpoints of earlier steps than the one just written, so a later-step folder left by something else
never pushes out the newest one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

__all__ = ["Checkpoint", "checkpoint_step", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

_PREFIX = "step-"
_TRAINABLE = StateDictOptions(ignore_frozen_params=True)


@dataclass(frozen=True)
class Checkpoint:
    """What `load_checkpoint` restored: the step and the trainer's own state."""

    path: Path
    step: int
    state: dict[str, Any]


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


@contextmanager
def _single_process_quiet() -> Iterator[bool]:
    """Yield DCP's `no_dist`; in one process, silence DCP's warning that it assumes one process."""
    no_dist = not dist.is_initialized()
    with warnings.catch_warnings():
        if no_dist:
            warnings.filterwarnings("ignore", message=r"torch\.distributed is .*single process")
        yield no_dist


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())


def _state_dicts(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return {
        "model": get_model_state_dict(model, options=_TRAINABLE),
        "optim": get_optimizer_state_dict(model, optimizer, options=_TRAINABLE),
    }


def save_checkpoint(
    directory: Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write a checkpoint for `step` atomically; of the earlier ones keep the newest `keep - 1`.

    Only checkpoints of steps before `step` are deleted: one with a later step (left by another run or
    an earlier attempt) is never the reason the one just written goes.

    In a distributed run every rank calls this with its (DDP- or FSDP-wrapped) model; each writes its
    own shards and rank 0 finishes the folder.

    Args:
        directory: the run's `checkpoints/` folder.
        step: the number of completed steps.
        model: the trained model; its trainable parameters are saved (all weights in a full fine-tune,
            the adapters with LoRA: frozen weights come back from the model config).
        optimizer: its state is saved.
        scheduler: its state is saved.
        state: JSON-serializable trainer state (data cursor, counters, ...).
        keep: checkpoints to keep: this one and the newest `keep - 1` of the earlier ones.

    Returns:
        The checkpoint folder.
    """
    rank = _rank()
    final = directory / f"{_PREFIX}{step:06d}"
    tmp = directory / f".tmp-{final.name}"
    if rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    _barrier()
    with _single_process_quiet() as no_dist:
        dcp.save(_state_dicts(model, optimizer), checkpoint_id=tmp, no_dist=no_dist)
    torch.save(_rng_state(), tmp / f"rng-{rank}.pt")
    _barrier()
    if rank == 0:
        torch.save({"scheduler": scheduler.state_dict()}, tmp / "trainer.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        earlier = [p for p in _step_folders(directory) if _step_of(p) < step]
        for old in earlier[: max(len(earlier) - (keep - 1), 0)]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def _step_of(folder: Path) -> int:
    """The step in a folder name `step-000010`, or -1 for a name that is not one."""
    digits = folder.name[len(_PREFIX) :]
    return int(digits) if digits.isdigit() else -1


def _step_folders(directory: Path) -> list[Path]:
    """The `step-N` folders of `directory` by step (numerically: step-1000000 comes after step-999999)."""
    return sorted((p for p in directory.glob(f"{_PREFIX}*") if _step_of(p) >= 0), key=_step_of)


def latest_checkpoint(directory: Path) -> Path | None:
    """The complete checkpoint folder with the highest step, or None."""
    found = [p for p in _step_folders(directory) if (p / "state.json").exists()]
    return found[-1] if found else None


def checkpoint_step(path: Path) -> int:
    """The step a complete checkpoint folder was written at (from its state.json)."""
    return int(json.loads((path / "state.json").read_text())["step"])


def _check_matches(path: Path, expected: dict[str, Any]) -> None:
    """Raise a clear error when the saved tensors are not the model's (names and global shapes)."""
    saved = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata
    saved_shapes = {
        k[len("model.") :]: tuple(v.size)
        for k, v in saved.items()
        if k.startswith("model.") and isinstance(v, TensorStorageMetadata)  # a model saves only tensors
    }
    current = {k: tuple(v.shape) for k, v in expected.items()}
    wrong = sorted(k for k in set(saved_shapes) & set(current) if saved_shapes[k] != current[k])
    if set(saved_shapes) != set(current) or wrong:
        raise ValueError(
            f"checkpoint {path} does not match the model: missing {sorted(set(current) - set(saved_shapes))[:5]}, "
            f"unexpected {sorted(set(saved_shapes) - set(current))[:5]}, other shapes {wrong[:5]}; "
            "was it written with another model or LoRA setting?"
        )


def load_checkpoint(
    path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> Checkpoint:
    """Restore model, optimizer, scheduler and RNG states from `path`; return step and trainer state.

    Works at any world size: call it on every rank of a distributed run, or in a single process.
    A rank with no RNG file of its own (more ranks than the writer had) takes rank 0's.
    """
    _check_matches(path, get_model_state_dict(model, options=_TRAINABLE))
    wanted = _state_dicts(model, optimizer)
    with _single_process_quiet() as no_dist:
        dcp.load(wanted, checkpoint_id=path, no_dist=no_dist)
    set_model_state_dict(model, wanted["model"], options=_TRAINABLE)
    set_optimizer_state_dict(model, optimizer, wanted["optim"], options=_TRAINABLE)
    scheduler.load_state_dict(torch.load(path / "trainer.pt", weights_only=False)["scheduler"])
    rng = path / f"rng-{_rank()}.pt"
    _set_rng_state(torch.load(rng if rng.exists() else path / "rng-0.pt", weights_only=False))
    state = json.loads((path / "state.json").read_text())
    return Checkpoint(path=path, step=int(state.pop("step")), state=state)
