"""`palaestra envs list`, `envs show`, `envs check` and `suites list`: browse the registered environments and
the suites; check an env you wrote.

Every listing prints a rich table in a terminal, one tab-separated line per row in a pipe (whole ids, for
`grep` and `cut`), and JSON with `--json`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from palaestra.cli.shared import (
    JSON_HELP,
    console,
    err_console,
    fail,
    parse_kwargs,
    print_json,
    print_listing,
)
from palaestra.envs.registration import (
    EnvCard,
    EnvUnavailableError,
    UnknownEnvError,
    env_card,
    list_envs,
    make,
)

__all__ = ["envs_check", "envs_list", "envs_show", "suites_list"]


def _record(card: EnvCard) -> dict[str, Any]:
    """A card as JSON-ready data."""
    entry = card.entry_point
    return {
        "id": card.id,
        "family": card.family,
        "max_turns": card.max_turns,
        "reward_range": list(card.reward_range),
        "description": card.description,
        "required_kwargs": list(card.required_kwargs),
        "kwargs": card.kwargs,
        "entry_point": entry
        if isinstance(entry, str) or entry is None
        else f"{entry.__module__}:{entry.__qualname__}",
        "unavailable": card.unavailable,
    }


def envs_list(
    family: Annotated[str | None, typer.Option(help="Only this family (Math, Code, ...).")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Also the envs that cannot run here, with the reason and the fix.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List the registered envs that can run here: id, family, turns, reward range, description."""
    records = [_record(card) for card in list_envs(family, include_unavailable=True)]
    shown = [r for r in records if all_ or r["unavailable"] is None]
    rows = [
        [
            r["id"],
            r["family"],
            str(r["max_turns"]),
            f"[{r['reward_range'][0]:g}, {r['reward_range'][1]:g}]",
            r["description"] if r["unavailable"] is None else f"unavailable here: {r['unavailable']}",
        ]
        for r in shown
    ]
    header = ("id", "family", "turns", "reward", "description")
    print_listing("palaestra environments", header, rows, shown, as_json=as_json)
    if hidden := len(records) - len(shown):
        err_console.print(
            f"{hidden} more registered env(s) cannot run here; `palaestra envs list --all` shows them "
            "with the reason and the fix."
        )


def envs_show(
    env_id: Annotated[
        str, typer.Argument(help="Env id, e.g. palaestra/Math-Arith-v0, or module:id (imports module first).")
    ],
    seed: Annotated[int, typer.Option(help="Seed of the sample task shown.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show an env's card, system prompt and a sample first observation."""
    try:
        card = env_card(env_id)
    except UnknownEnvError as exc:
        raise fail(str(exc)) from None
    record = _record(card)
    sample = record["unavailable"] is None and not card.required_kwargs
    if sample:
        try:
            env = make(card.id)
        except EnvUnavailableError as exc:
            raise fail(str(exc)) from None
        observation, _ = env.reset(seed=seed)
        record["system_prompt"] = getattr(env.unwrapped, "system_prompt", "")
        record["first_observation"] = {"seed": seed, "observation": observation}
        env.close()
    if as_json:
        print_json(record)
        return
    console.print(f"[bold]{escape(card.id)}[/]  ({escape(card.family)})")
    console.print(card.description, markup=False)
    console.print(f"max turns: {card.max_turns}   reward range: {card.reward_range}", markup=False)
    console.print(f"entry point: {record['entry_point']}   kwargs: {card.kwargs}", markup=False)
    if (reason := record["unavailable"]) is not None:
        console.print(f"[red]unavailable here:[/] {escape(reason)}")
    elif card.required_kwargs:
        console.print(f"required kwargs: {', '.join(card.required_kwargs)} (no sample shown)", markup=False)
    if sample:
        console.rule("system prompt")
        console.print(record["system_prompt"], markup=False)
        console.rule(f"first observation (seed={seed})")
        console.print(record["first_observation"]["observation"], markup=False)


def suites_list(
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List the bundled benchmark suites (configs/suites/): name, envs, description."""
    from palaestra.evaluation.suites import SuiteError, list_suites, load_suite

    try:
        suites = {name: load_suite(name) for name in list_suites()}
    except SuiteError as exc:
        raise fail(str(exc)) from None
    records = [
        {"name": name, "envs": [env.id for env in suite.envs], "description": suite.description}
        for name, suite in suites.items()
    ]
    rows = [[name, " ".join(env.id for env in s.envs), s.description] for name, s in suites.items()]
    print_listing("benchmark suites", ("name", "envs", "description"), rows, records, as_json=as_json)


def envs_check(
    env_id: Annotated[str, typer.Argument(help="Env id, or module:id (imports module first).")],
    env_kwarg: Annotated[list[str] | None, typer.Option(help="Env kwarg KEY=VALUE (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Check an env against the text-env contract (for env authors): gymnasium's env checker, seeded
    determinism, text spaces, info keys, reward range, turn limit, malformed replies, the expert.

    Prints what passes, what fails and how to fix it; exits with code 1 when a check fails.
    """
    from palaestra.envs.checker import run_checks

    try:
        report = run_checks(env_id, parse_kwargs(env_kwarg))
    except UnknownEnvError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print_json(report.to_dict())
    else:
        for f in report.findings:
            mark = "[green]PASS[/]" if f.ok else "[bold red]FAIL[/]"
            console.print(f"{mark} {escape(f.check)}: {escape(f.detail)}", highlight=False)
            if f.fix:
                console.print(f"     [yellow]fix:[/] {escape(f.fix)}", highlight=False)
        failed = len(report.failures)
        verdict = "[green]passes every check[/]" if report.ok else f"[bold red]fails {failed} check(s)[/]"
        console.print(f"{escape(report.env_id)} {verdict}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
