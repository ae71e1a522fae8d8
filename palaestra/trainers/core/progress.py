"""A rich progress bar for training steps showing the latest reward and success."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["training_progress"]


@contextmanager
def training_progress(
    total: int, *, start: int = 0, enabled: bool = True
) -> Iterator[Callable[[dict[str, float]], None]]:
    """Yield a callback taking a step's metrics that advances the bar (a no-op when disabled)."""
    if not enabled:
        yield lambda _metrics: None
        return
    columns = (
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "reward {task.fields[reward]:.3f}  success {task.fields[success]:.0%}  {task.fields[step_s]:.1f}s/step"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task("train", total=total, completed=start, reward=0.0, success=0.0, step_s=0.0)

        def advance(metrics: dict[str, float]) -> None:
            progress.update(
                task,
                advance=1,
                reward=metrics.get("reward/mean", 0.0),
                success=metrics.get("rollout/success", 0.0),
                step_s=metrics.get("time/step_s", 0.0),
            )

        yield advance
