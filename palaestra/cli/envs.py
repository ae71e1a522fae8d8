"""`palaestra envs list` and `palaestra envs show`: browse the registered environments."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from palaestra.cli.shared import console, fail
from palaestra.envs.registration import EnvUnavailableError, UnknownEnvError, env_card, list_envs, make

__all__ = ["envs_list", "envs_show"]


def envs_list(
    family: Annotated[str | None, typer.Option(help="Only this family (Math, Code, ...).")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Also the envs that cannot run here, with the reason and the fix.")
    ] = False,
) -> None:
    """List the registered envs that can run here: id, family, turns, description."""
    table = Table(title="palaestra environments")
    for column in ("id", "family", "turns", "reward", "description"):
        table.add_column(column, overflow="fold")
    cards = list_envs(family, include_unavailable=True)
    hidden = 0
    for card in cards:
        low, high = card.reward_range
        reason = card.unavailable
        if reason is not None and not all_:
            hidden += 1
            continue
        description = card.description if reason is None else f"[red]unavailable here:[/] {escape(reason)}"
        table.add_row(card.id, card.family, str(card.max_turns), f"[{low:g}, {high:g}]", description)
    console.print(table)
    if hidden:
        console.print(
            f"{hidden} more registered env(s) cannot run here; `palaestra envs list --all` shows them "
            "with the reason and the fix."
        )


def envs_show(
    env_id: Annotated[str, typer.Argument(help="Env id, e.g. palaestra/Math-Arith-v0.")],
    seed: Annotated[int, typer.Option(help="Seed of the sample task shown.")] = 0,
) -> None:
    """Show an env's card, system prompt and a sample first observation."""
    try:
        card = env_card(env_id)
    except UnknownEnvError as exc:
        raise fail(str(exc)) from None
    console.print(f"[bold]{card.id}[/]  ({card.family})")
    console.print(card.description)
    console.print(f"max turns: {card.max_turns}   reward range: {card.reward_range}")
    console.print(f"entry point: {card.entry_point}   kwargs: {card.kwargs}")
    if (reason := card.unavailable) is not None:
        console.print(f"[red]unavailable here:[/] {escape(reason)}")
        return
    if card.required_kwargs:
        console.print(f"required kwargs: {', '.join(card.required_kwargs)} (no sample shown)")
        return
    try:
        env = make(card.id)
    except EnvUnavailableError as exc:
        raise fail(str(exc)) from None
    observation, _ = env.reset(seed=seed)
    console.rule("system prompt")
    console.print(getattr(env.unwrapped, "system_prompt", ""), markup=False)
    console.rule(f"first observation (seed={seed})")
    console.print(observation, markup=False)
    env.close()
