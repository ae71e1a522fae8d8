"""`palaestra eval --suite`: make the agents, run the suite (resumably), print per-env tables and the board."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from palaestra.evaluation.checks import ORACLE, check_env, check_expert, check_out_dir
from palaestra.evaluation.compare import leaderboard, leaderboard_table, load_entries, per_env_table
from palaestra.evaluation.evaluate import EvalResult
from palaestra.evaluation.suite_run import run_suite
from palaestra.evaluation.suites import SuiteError, load_suite
from palaestra.terminal import error_line, make_console

__all__ = ["eval_suite", "suite_table"]

console = make_console()
err_console = make_console(stderr=True)


def suite_table(results: dict[str, EvalResult], title: str) -> Table:
    """One row per env: success with its bootstrap 95% CI, reward, turns, tokens, format errors, wall time."""
    table = Table(title=title)
    for col in (
        "env",
        "episodes",
        "success [95% CI]",
        "reward",
        "turns",
        "tokens/ep",
        "format err.",
        "wall s",
    ):
        table.add_column(col, justify="left" if col == "env" else "right", overflow="fold")
    for key, r in results.items():
        s = r.summary
        lo, hi = s.success_bootstrap_ci95
        table.add_row(
            key,
            str(s.episodes),
            f"{s.success_rate:.1%} [{lo:.1%}, {hi:.1%}]",
            f"{s.reward_mean:.3f}",
            f"{s.turns_mean:.2f}",
            f"{s.generated_tokens_mean:.1f}",
            f"{s.format_error_rate:.1%}",
            f"{s.wall_time_s:.1f}",
        )
    return table


def eval_suite(
    name: str,
    specs: Sequence[str],
    out: Path | None,
    *,
    agent_options: dict[str, Any],
    chunk_size: int,
    as_json: bool = False,
) -> Path:
    """Run suite `name` for every agent spec and print the results; returns the results JSON path.

    With `as_json` stdout gets one JSON object, `{"results": <OUT/results.json>, "leaderboard": ...}`,
    and the progress lines go to stderr.

    The suite, each of its envs (built once with its kwargs), the agent specs and the output folder are
    all checked before any model loads.

    Raises:
        typer.Exit: (code 2) on a bad suite, env, agent spec, option or output folder, after printing the
            reason.
    """
    from palaestra.agents.spec import check_spec, make_policy

    try:
        if chunk_size < 1:
            raise ValueError(f"--chunk-size={chunk_size}; it must be >= 1")
        suite = load_suite(name)
        if len(set(specs)) != len(specs):
            raise ValueError(f"--agent repeats a spec: {list(specs)}")
        for spec in specs:
            check_spec(spec, **agent_options)
        for env in suite.envs:
            env_id = check_env(env.id, env.env_kwargs())
            if ORACLE in specs:
                check_expert(env_id, env.env_kwargs(), seed=env.seed)
        out = check_out_dir(out or Path("runs") / "eval" / suite.name)
        policies = [make_policy(spec, **agent_options) for spec in specs]
    except (SuiteError, ValueError, TypeError, FileNotFoundError) as exc:
        error_line(err_console, str(exc))
        raise typer.Exit(2) from None
    done: dict[str, dict[str, EvalResult]] = {}

    def show(spec: str, key: str, result: EvalResult) -> None:
        done.setdefault(spec, {})[key] = result
        s = result.summary
        (err_console if as_json else console).print(
            f"{spec} on {key}: success {s.success_rate:.1%} "
            f"[{s.success_bootstrap_ci95[0]:.1%}, {s.success_bootstrap_ci95[1]:.1%}]  "
            f"reward {s.reward_mean:.3f}  ({s.episodes} episodes, {s.wall_time_s:.1f} s)"
        )

    try:
        run_suite(suite, policies, out, specs=specs, chunk_size=chunk_size, on_env_done=show)
    except (SuiteError, ValueError, TypeError) as exc:
        error_line(err_console, str(exc))
        raise typer.Exit(2) from None
    finally:
        for policy in policies:
            asyncio.run(policy.close())
    board = leaderboard(load_entries([out]))
    if as_json:
        results_json = json.loads((out / "results.json").read_text())
        sys.stdout.write(
            json.dumps({"results": results_json, "leaderboard": board.to_dict()}, indent=2) + "\n"
        )
        err_console.print(f"results: {out / 'results.json'}")
        return out / "results.json"
    for spec, results in done.items():
        console.print(suite_table(results, title=f"{suite.name}: {spec}"))
    console.print(leaderboard_table(board))
    console.print(per_env_table(board))
    console.print(f"results: {out / 'results.json'}")
    return out / "results.json"
