"""A rich progress bar that counts finished episodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from palaestra.rollout.trajectory import Trajectory

__all__ = ["episode_progress"]


@contextmanager
def episode_progress(
    total: int, description: str = "episodes", *, enabled: bool = True, console: Console | None = None
) -> Iterator[Callable[[Trajectory], None]]:
    """Yield an `on_episode_end` callback that advances a progress bar (a no-op when disabled).

    The bar shows the running success rate, which is what one watches on a long evaluation.
    """
    if not enabled:
        yield lambda _traj: None
        return
    done = {"n": 0, "success": 0}
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("success {task.fields[success]:.0%}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total, success=0.0)

        def advance(traj: Trajectory) -> None:
            done["n"] += 1
            done["success"] += int(traj.success)
            progress.update(task, advance=1, success=done["success"] / done["n"])

        yield advance
