"""`palaestra train`, `export` and `placement`: run training from a config, export a checkpoint, plan a cluster."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from palaestra.cli.shared import console, fail

__all__ = ["before_after_table", "export_command", "placement_command", "train_command"]


def train_command(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see configs/).")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Overrides like optimizer.lr=1e-5 run.steps=10.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in run.output_dir/run.name from its newest checkpoint. A missing or empty "
            "folder starts from step 0 (with a notice); a run without a complete checkpoint is an error."
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Start over in a folder that holds a previous run: it is moved aside to NAME.old-<time> "
            "next to it (never deleted)."
        ),
    ] = False,
) -> None:
    """Train with the algorithm in CONFIG; evaluates on the held-out envs before and after.

    A run folder holds one run: starting again where a run left metrics, checkpoints or a final model is
    refused unless --resume or --overwrite says what to do with it. Envs and the folder are checked
    before the model loads. A run stopped early (failing env episodes, steps with nothing to train on,
    a failed evaluation) saves a checkpoint first and exits with code 1.
    """
    from palaestra.agents.models import check_model_name
    from palaestra.config import ConfigError, load_config
    from palaestra.trainers import make_trainer
    from palaestra.trainers.core.checkpoint import checkpoint_step
    from palaestra.trainers.core.preflight import RunSetupError, check_envs, prepare_run_dir
    from palaestra.trainers.core.trainer import RunStopped

    try:
        cfg = load_config(config, overrides or [])
        check_model_name(cfg.model.name)
        check_envs(cfg)
        # under torchrun every rank runs this; rank 0 alone moves a previous run aside
        start = prepare_run_dir(
            cfg.run.run_dir, resume=resume, overwrite=overwrite, main=os.environ.get("RANK", "0") == "0"
        )
    except (ConfigError, RunSetupError) as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:  # the model name
        raise fail(f"model.name: {exc}") from None
    if start.message:
        console.print(start.message, markup=False, highlight=False)
    if start.resume_from is not None and checkpoint_step(start.resume_from) >= cfg.run.steps:
        console.print(f"the run already reached run.steps={cfg.run.steps}; raise run.steps to train further")
    try:
        trainer = make_trainer(cfg)
        out = trainer.train(start=start)  # envs and folder are checked: the trainer does not repeat it
    except RunStopped as exc:
        raise fail(str(exc), code=1) from None
    if trainer.dist.is_main:  # under torchrun: one report, from rank 0
        console.print(before_after_table(out["before"], out["after"]))
        console.print(f"run directory: {cfg.run.run_dir}   final model: {cfg.run.run_dir / 'final'}")
        if cfg.logging.report:
            console.print(
                f"report: {cfg.run.run_dir / 'report.html'}   (browse episodes: palaestra view {cfg.run.run_dir})"
            )


def before_after_table(before: dict[str, float] | None, after: dict[str, float] | None) -> Table:
    """The held-out metrics before and after training, with the change."""
    table = Table(title="held-out evaluation")
    for column in ("metric", "before", "after", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key in sorted((after or {}).keys()):
        b = (before or {}).get(key)
        a = (after or {})[key]
        change = f"{a - b:+.3f}" if b is not None else ""
        table.add_row(key, f"{b:.3f}" if b is not None else "-", f"{a:.3f}", change)
    return table


def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (holds config.yaml and checkpoints/).")],
    out: Annotated[Path, typer.Argument(help="Folder to write the HF model to.")],
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint folder (default: the run's newest).")
    ] = None,
) -> None:
    """Consolidate a checkpoint (written at any world size) into a plain HF model folder, in one process."""
    from palaestra.config import ConfigError, load_config
    from palaestra.trainers import make_trainer
    from palaestra.trainers.core.checkpoint import latest_checkpoint

    try:
        cfg = load_config(run_dir / "config.yaml")
    except ConfigError as exc:
        raise fail(str(exc)) from None
    path = checkpoint or latest_checkpoint(run_dir / "checkpoints")
    if path is None or not (path / "state.json").exists():
        raise fail(f"no complete checkpoint at {path or run_dir / 'checkpoints'}")
    trainer = make_trainer(cfg)
    try:
        trainer.resume(path)
    except ValueError as exc:
        raise fail(str(exc)) from None
    trainer.export(out)
    console.print(f"exported {path} (step {trainer.step}) to {out}  (use as --agent hf:{out})")


def placement_command(
    config: Annotated[Path, typer.Argument(help="Config YAML with a `placement` section (configs/scale/).")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Overrides like placement.nodes=2 placement.mode=split.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan only; no Ray cluster needed.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    address: Annotated[str, typer.Option(help="Ray cluster address (without --dry-run).")] = "auto",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the placement groups.")] = 600.0,
) -> None:
    """Plan where trainer ranks and rollout engines run; without --dry-run, reserve it on Ray and release."""
    from palaestra.config import ConfigError, load_config
    from palaestra.placement import plan, reserve

    try:
        cfg = load_config(config, overrides or [])
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if cfg.placement is None:
        raise fail(f"{config} has no `placement` section; see configs/scale/ for worked examples")
    layout = plan(cfg.placement)
    text = json.dumps(layout.to_dict(), indent=2) if as_json else layout.describe()
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    if dry_run:
        return
    try:
        import ray

        ray.init(address=address)
        reservation = reserve(layout, timeout_s=timeout)
    except (ImportError, TimeoutError, ConnectionError) as exc:
        raise fail(str(exc), code=1) from None
    console.print(f"reserved {len(reservation.groups)} placement group(s) on the Ray cluster; released")
    reservation.release()
