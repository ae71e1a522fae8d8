"""The `palaestra` command line: `envs list|show|check`, `suites list`, `eval`, `compare`, `train`, `export`,
`placement`, `demos`, `report`, `view`, `serve`, `new-env`.

Run `palaestra --help` or `palaestra COMMAND --help` for the options. This module builds the typer app;
each subcommand lives in a module of its own: `envs` (envs list, show, check; suites list), `evaluate`
(eval), `results` (compare, report, view), `train` (train, export, placement), `serve`, `demos` and
`new_env`; `shared` holds the consoles, the error exit and the output for scripts.
"""

from __future__ import annotations

import json
import os
import sys

import typer

from palaestra.cli.demos import demos_command
from palaestra.cli.envs import envs_check, envs_list, envs_show, suites_list
from palaestra.cli.evaluate import eval_command
from palaestra.cli.new_env import new_env_command
from palaestra.cli.results import compare_command, report_command, view_command
from palaestra.cli.serve import serve_command
from palaestra.cli.shared import console
from palaestra.cli.train import export_command, placement_command, train_command

__all__ = ["app", "main"]

app = typer.Typer(help="Train and evaluate LLM agents with multi-turn RL.", no_args_is_help=True)
envs_app = typer.Typer(help="Browse the registered environments; check one you wrote.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")
envs_app.command("list")(envs_list)
envs_app.command("show")(envs_show)
envs_app.command("check")(envs_check)
suites_app = typer.Typer(
    help="Browse the benchmark suites (palaestra eval --suite NAME).", no_args_is_help=True
)
app.add_typer(suites_app, name="suites")
suites_app.command("list")(suites_list)
app.command("eval")(eval_command)
app.command("compare")(compare_command)
app.command("report")(report_command)
app.command("view")(view_command)
app.command("train")(train_command)
app.command("demos")(demos_command)
app.command("export")(export_command)
app.command("placement")(placement_command)
app.command("serve")(serve_command)
app.command("new-env")(new_env_command)


@app.command("version")
def version() -> None:
    """Print the palaestra version."""
    from palaestra import __version__

    console.print(json.dumps({"palaestra": __version__}))


def main() -> None:
    """Console-script entry point.

    The current folder goes first on the import path, as under `python -m`: `--env myenv:mine/Reverse-v0`
    and a config's `imports: [myenv]` find a `myenv.py` beside the user.
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app()
