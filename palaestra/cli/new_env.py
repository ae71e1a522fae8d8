"""`palaestra new-env NAME`: write a small installable package with a working env, to edit into your own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from palaestra.cli.shared import console, fail

__all__ = ["new_env_command"]


def new_env_command(
    name: Annotated[str, typer.Argument(help="Project name, e.g. word-game (the module becomes word_game).")],
    dir_: Annotated[Path, typer.Option("--dir", help="Folder to create the project in.")] = Path("."),
) -> None:
    """Write NAME/: an env package (env module, entry point, a test running the checker, a training config)
    that passes `palaestra envs check` and trains as written."""
    from palaestra.envs.scaffold import plan_package, write_package

    try:
        package = plan_package(name, dir_)
        files = write_package(package)
    except ValueError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write {dir_ / name}: {exc.strerror or exc}", code=1) from None
    console.print(f"created {package.folder} with the env {package.env_id}:", markup=False, highlight=False)
    for path in files:
        console.print(f"  {path}", markup=False, highlight=False)
    console.print(
        "\n".join(
            [
                "next, in that folder:",
                f"  palaestra envs check {package.module_id}",
                "  pytest tests",
                "  palaestra train configs/train.yaml",
                f"  pip install -e .   (optional: registers {package.env_id} for every palaestra command)",
            ]
        ),
        markup=False,
        highlight=False,
    )
