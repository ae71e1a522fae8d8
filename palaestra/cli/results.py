"""`palaestra compare`, `report` and `view`: rank evaluation results, write a run's report, browse its episodes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from palaestra.cli.shared import JSON_HELP, console, fail, print_json

__all__ = ["compare_command", "report_command", "view_command"]


def compare_command(
    results: Annotated[list[Path], typer.Argument(help="results.json files (or folders holding one).")],
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Rank evaluation results side by side: score with 95% CI, gap to the leader and its significance."""
    from palaestra.evaluation.compare import leaderboard, leaderboard_table, load_entries, per_env_table

    try:
        board = leaderboard(load_entries(results))
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        print_json(board.to_dict())
        return
    console.print(leaderboard_table(board))
    console.print(per_env_table(board))


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A training run or evaluation output folder.")],
) -> None:
    """Write RUN_DIR/report.html (plots and tables, self-contained) and the trajectory viewer beside it."""
    from palaestra.reports import write_report

    try:
        path = write_report(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"report: {path}   viewer: {path.parent / 'viewer' / 'index.html'}")


def view_command(
    run_dir: Annotated[Path, typer.Argument(help="A training run or evaluation output folder.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 8765,
) -> None:
    """Serve the trajectory viewer of RUN_DIR on http://127.0.0.1:PORT (Ctrl-C stops it)."""
    from palaestra.reports import build_viewer, load_run, serve

    try:
        run = load_run(run_dir)
        if not any(e.files for ev in run.evaluations for e in ev.envs.values()):
            raise ValueError(
                f"nothing to view in {run_dir}: it holds no episodes; the viewer shows the trajectories of "
                "an evaluation (trajectories.parquet beside results.json, from palaestra eval --out) or a "
                "training run's eval/ folder"
            )
        build_viewer(run)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    import contextlib
    import threading

    try:
        with serve(run_dir, port=port) as url:
            console.print(f"trajectory viewer: {url}viewer/index.html   (Ctrl-C to stop)")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    except OSError as exc:
        raise fail(f"cannot serve on 127.0.0.1:{port} ({exc}); pass another --port, or --port 0") from None
