"""What a training run checks before any model loads: its envs build, and its folder is its own.

A run folder `output_dir/name` belongs to one run. Starting a run where another one left metrics,
checkpoints or a final model is refused; the user resumes it, moves it aside (`overwrite`: renamed to
`name.old-<time>` next to it, never deleted) or picks another name. Each check raises `RunSetupError`
with one line that names the problem and the fix.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from palaestra.envs.registration import check_env
from palaestra.trainers.core.checkpoint import checkpoint_step, latest_checkpoint

if TYPE_CHECKING:
    from palaestra.config import TrainConfig

__all__ = ["RunSetupError", "RunStart", "check_envs", "prepare_run_dir"]

logger = logging.getLogger(__name__)


class RunSetupError(ValueError):
    """A run cannot start as configured; the message is one line naming the fix."""


@dataclass(frozen=True)
class RunStart:
    """How a run starts in its folder.

    Attributes:
        run_dir: the run folder (with `main`: it exists and is writable).
        resume_from: the checkpoint to continue from; None: start from step 0.
        moved_to: where `overwrite` moved the previous run, else None.
        message: one line saying which of these happened, for the user ("" for a plain fresh start).
    """

    run_dir: Path
    resume_from: Path | None = None
    moved_to: Path | None = None
    message: str = ""


def check_envs(config: TrainConfig) -> None:
    """Build every training and held-out env of `config` once (and close it).

    With `rollout.ray` set the training envs are built on the Ray workers, which may have packages
    this process lacks, so only the held-out envs (evaluated here) are checked. An env with a
    `server` is reset once on its server.

    Raises:
        RunSetupError: naming the entry (`envs.train[0]`) and what is wrong with it.
    """
    entries = [(f"envs.eval[{i}]", e.id, e.kwargs, e.server) for i, e in enumerate(config.envs.eval)]
    train = [(f"envs.train[{i}]", e.id, e.kwargs, e.server) for i, e in enumerate(config.envs.train)]
    # a served env is checked on its server; a local one here unless the Ray workers build it
    entries = [e for e in train if config.rollout.ray is None or e[3] is not None] + entries
    for where, env_id, kwargs, server in entries:
        try:
            if server is None:
                check_env(env_id, kwargs)
            else:
                from palaestra.envs.remote import check_remote_env  # openenv-core: only for served envs

                check_remote_env(server, env_id, kwargs)
        except Exception as exc:  # whatever the env raises, the user gets one line naming the entry
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunSetupError(f"{where}: {message}") from exc


def _run_content(run_dir: Path) -> list[str]:
    """What in `run_dir` is a run's work: metrics, checkpoints, a final model."""
    found = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size > 0:
        found.append("metrics.jsonl")
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*"))  # complete or not
    if checkpoints:
        found.append(f"checkpoints/{checkpoints[-1].name}")
    if (run_dir / "final").exists():
        found.append("final/")
    return found


def _check_writable(run_dir: Path) -> None:
    for folder in (run_dir, *run_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise RunSetupError(
                    f"{folder} is a file, not a folder; set run.output_dir to a folder the run may write in"
                )
            break
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as exc:
        raise RunSetupError(
            f"cannot write the run folder {run_dir} ({exc.strerror or exc}); "
            "set run.output_dir to a writable folder"
        ) from None


def _aside_name(run_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 2
    while target.exists():
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
        n += 1
    return target


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool, main: bool = True) -> RunStart:
    """Decide how a run starts in `run_dir`; create it and check that it is writable.

    * Fresh start (neither flag): the folder must hold no other run's metrics, checkpoints or final model.
    * `resume`: continue from the newest complete checkpoint. A missing or empty folder starts from
      step 0 (said in `message`); a run with metrics but no complete checkpoint is an error.
    * `overwrite`: move a previous run aside to `NAME.old-<time>` (never deleted) and start from step 0.

    Args:
        run_dir: the run folder.
        resume: continue the run in the folder.
        overwrite: move a previous run aside first.
        main: whether this process moves and creates the folder (rank 0 of a distributed run); the
            others only check what it holds.

    Raises:
        RunSetupError: both flags, a folder that holds another run, nothing to resume, or an unwritable folder.
    """
    if resume and overwrite:
        raise RunSetupError("pass --resume or --overwrite, not both")
    if overwrite and not main:
        return RunStart(run_dir)  # rank 0 moves the folder, maybe right now: nothing here to look at
    content = _run_content(run_dir) if run_dir.is_dir() else []
    moved_to = None
    message = ""
    resume_from = None
    if resume:
        resume_from = latest_checkpoint(run_dir / "checkpoints")
        if resume_from is not None:
            message = f"resuming {run_dir} from {resume_from.name} (step {checkpoint_step(resume_from)})"
        elif content:
            raise RunSetupError(
                f"nothing to resume: {run_dir} holds a run ({', '.join(content)}) but no complete checkpoint "
                "(checkpoint.every=0 saves only at the end); start over with --overwrite (moves it aside) "
                "or choose another run.name"
            )
        else:
            message = f"no checkpoint in {run_dir}: starting from step 0"
    elif content and not overwrite:
        raise RunSetupError(
            f"run folder {run_dir} already holds a run ({', '.join(content)}); continue it with --resume, "
            "move it aside and start over with --overwrite, or choose another run.name"
        )
    elif content and main:
        moved_to = _aside_name(run_dir)
        run_dir.rename(moved_to)
        message = f"moved the previous run in {run_dir} to {moved_to}"
    if main:  # the others wait for rank 0 before writing (see `Trainer.train`)
        _check_writable(run_dir)
    if message:
        logger.info(message)
    return RunStart(run_dir, resume_from, moved_to, message)
