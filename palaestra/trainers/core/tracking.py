"""Metric sinks for training: `metrics.jsonl` always, TensorBoard and W&B when enabled."""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from palaestra.io import atomic_write_text, read_jsonl
from palaestra.rollout.trajectory import Trajectory

__all__ = [
    "MetricsWriter",
    "mean_or_zero",
    "merge_rank_metrics",
    "nan_mean",
    "read_metrics",
    "rollout_metrics",
]

logger = logging.getLogger(__name__)


class MetricsWriter:
    """Appends one JSON line per step to `run_dir/metrics.jsonl` and mirrors scalars to the enabled sinks.

    On resume, lines from steps after the checkpoint are dropped first, so the file never holds a
    step twice. Each line is appended with one write and synced, so a kill leaves at most the last line
    cut short; readers skip such a line. With `enabled=False` (every rank but 0 of a distributed run) it
    writes nothing.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        tensorboard: bool = True,
        wandb: bool = False,
        wandb_project: str = "palaestra",
        config: dict[str, Any] | None = None,
        enabled: bool = True,
    ):
        self.path = run_dir / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
            except ImportError:
                warnings.warn("tensorboard is not installed; logging only to metrics.jsonl", stacklevel=2)
        if wandb:
            try:
                import wandb as wandb_lib
            except ImportError:
                warnings.warn("logging.wandb is true but wandb is not installed; skipping W&B", stacklevel=2)
            else:
                self._wandb = wandb_lib.init(
                    project=wandb_project, name=run_dir.name, config=config, resume="allow"
                )

    def truncate_after(self, step: int) -> None:
        """Drop lines of steps > `step` (used when resuming from a checkpoint at `step`) and cut lines.

        The file is replaced atomically: a kill while it is rewritten leaves the old one.
        """
        if not self.enabled or not self.path.exists():
            return
        kept = [r for r in read_jsonl(self.path) if isinstance(r, dict) and r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        _append_line(self.path, json.dumps(record) + "\n")
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _clean(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _append_line(path: Path, line: str) -> None:
    """Append `line` with one `write` on an O_APPEND descriptor, then sync it to disk."""
    data = line.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while data:  # one call writes it all on local filesystems; loop for the rest if not
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of `run_dir/metrics.jsonl`, in order (a line cut short is skipped with a warning)."""
    return read_jsonl(Path(run_dir) / "metrics.jsonl")


def nan_mean(values: Sequence[float]) -> float:
    """The mean, or NaN for no values (a metric with nothing to average)."""
    return float(np.mean(values)) if len(values) else float("nan")


def mean_or_zero(values: Sequence[float]) -> float:
    """The mean, or 0.0 for no values (a rate over no events, e.g. the match rate of no step)."""
    return float(np.mean(values)) if len(values) else 0.0


def rollout_metrics(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """A step's rollout metrics: rewards, group spread, success, turns, reply length, errors."""
    rewards = [t.reward for t in trajectories]
    groups: dict[int, list[float]] = {}
    for t in trajectories:
        groups.setdefault(t.group_index, []).append(t.reward)
    return {
        "reward/mean": nan_mean(rewards),
        "reward/std": float(np.std(rewards)) if rewards else float("nan"),
        "reward/group_std_mean": nan_mean([float(np.std(g)) for g in groups.values()]),
        "reward/zero_variance_groups": nan_mean([float(np.ptp(g) == 0) for g in groups.values()]),
        "rollout/success": nan_mean([float(t.success) for t in trajectories]),
        "rollout/turns_mean": nan_mean([t.num_turns for t in trajectories]),
        "rollout/response_length": nan_mean(
            [t.num_generated_tokens / max(t.num_turns, 1) for t in trajectories]
        ),
        "rollout/format_error_rate": nan_mean(
            [t.num_format_errors / max(t.num_turns, 1) for t in trajectories]
        ),
        "rollout/env_errors": float(sum(t.error is not None for t in trajectories)),
        "rollout/episodes": float(len(trajectories)),
    }


def merge_rank_metrics(parts: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each rank's metrics of its shard of a step, averaged key by key (NaN: the rank had none)."""
    keys = {k: None for part in parts for k in part}
    return {k: nan_mean([p[k] for p in parts if k in p and not math.isnan(p[k])]) for k in keys}
