"""Atomic, resumable checkpoints: weights, optimizer, scheduler, RNG states, step and data cursor.

A checkpoint is a folder `checkpoints/step-000010/` written under a temporary name and renamed when
complete, so a run killed while saving leaves the previous checkpoint intact and no half folder that
looks valid.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = ["Checkpoint", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

_PREFIX = "step-"


@dataclass(frozen=True)
class Checkpoint:
    """What `load_checkpoint` restored: the step and the trainer's own state."""

    path: Path
    step: int
    state: dict[str, Any]


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


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters by name (shared tensors appear once: named_parameters dedups them)."""
    return {k: v.detach().contiguous() for k, v in model.named_parameters() if v.requires_grad}


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
    """Write a checkpoint for `step` atomically and delete all but the newest `keep`.

    Args:
        directory: the run's `checkpoints/` folder.
        step: the number of completed steps.
        model: the trained model; its trainable parameters are saved (all weights in a full fine-tune,
            the adapters with LoRA: frozen weights come back from the model config).
        optimizer: its state is saved.
        scheduler: its state is saved.
        state: JSON-serializable trainer state (data cursor, counters, ...).
        keep: checkpoints to keep.

    Returns:
        The checkpoint folder.
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{_PREFIX}{step:06d}"
    tmp = directory / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(_trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state()},
        tmp / "trainer.pt",
    )
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
    for f in tmp.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(directory.glob(f"{_PREFIX}*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    found = sorted(p for p in directory.glob(f"{_PREFIX}*") if (p / "state.json").exists())
    return found[-1] if found else None


def load_checkpoint(
    path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> Checkpoint:
    """Restore model, optimizer, scheduler and RNG states from `path`; return step and trainer state."""
    saved = load_file(str(path / "trainable.safetensors"))
    current = _trainable_state(model)
    expected = set(current)
    wrong_shape = [k for k in expected & set(saved) if saved[k].shape != current[k].shape]
    if set(saved) != expected or wrong_shape:
        raise ValueError(
            f"checkpoint {path} does not match the model: missing {sorted(expected - set(saved))[:5]}, "
            f"unexpected {sorted(set(saved) - expected)[:5]}; was it written with another model or LoRA setting?"
        )
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, tensor in saved.items():
            params[name].copy_(tensor)
    blob = torch.load(path / "trainer.pt", weights_only=False)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    _set_rng_state(blob["rng"])
    state = json.loads((path / "state.json").read_text())
    return Checkpoint(path=path, step=int(state.pop("step")), state=state)
