"""`palaestra demos`: write an env's expert demonstrations (offline data for semi-online RL and SFT)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from palaestra.cli.shared import check_flags, console, err_console, fail, parse_kwargs

__all__ = ["demos_command"]


def demos_command(
    env: Annotated[str, typer.Option("--env", help="Env id whose scripted expert plays.")],
    episodes: Annotated[int, typer.Option(help="Number of tasks (seeds seed..seed+N-1).")] = 100,
    out: Annotated[Path, typer.Option(help="Folder for demos.parquet and summary.json.")] = Path(
        "runs/demos"
    ),
    seed: Annotated[int, typer.Option(help="First task seed.")] = 0,
    env_kwarg: Annotated[list[str] | None, typer.Option(help="Env kwarg KEY=VALUE (repeatable).")] = None,
    keep_failures: Annotated[bool, typer.Option(help="Keep the expert's failed episodes too.")] = False,
) -> None:
    """Write expert demonstrations (offline data for semi-online RL and SFT) of an env."""
    from palaestra.evaluation.checks import check_env, check_expert, check_out_dir
    from palaestra.rollout.demos import collect_demos, write_demos

    env_kwargs = parse_kwargs(env_kwarg)
    check_flags((episodes >= 1, f"--episodes={episodes}; it must be >= 1"))
    try:
        env_id = check_env(env, env_kwargs)
        check_expert(env_id, env_kwargs, seed=seed, who="palaestra demos")
        check_out_dir(out)
        demos = collect_demos(
            env_id, episodes=episodes, seed=seed, env_kwargs=env_kwargs, only_success=not keep_failures
        )
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    try:
        path = write_demos(demos, out)
    except OSError as exc:
        raise fail(f"cannot write the demos to {out}: {exc}", code=1) from None
    console.print(
        f"{demos.env_id}: expert solved {demos.succeeded}/{demos.attempted}; "
        f"{len(demos.trajectories)} demos in {path}"
    )
    if demos.errors:
        err_console.print(f"[yellow]{len(demos.errors)} episode(s) failed; first: {demos.errors[0]}[/]")
