"""Metric sinks for training: `metrics.jsonl` always, TensorBoard and W&B when enabled."""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

__all__ = ["MetricsWriter", "read_metrics"]

logger = logging.getLogger(__name__)


class MetricsWriter:
    """Appends one JSON line per step to `run_dir/metrics.jsonl` and mirrors scalars to the enabled sinks.

    On resume, lines from steps after the checkpoint are dropped first, so the file never holds a
    step twice. With `enabled=False` (every rank but 0 of a distributed run) it writes nothing.
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
        """Drop lines of steps > `step` (used when resuming from a checkpoint at `step`)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [
            line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step
        ]
        self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
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


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of `run_dir/metrics.jsonl`, in order."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]
