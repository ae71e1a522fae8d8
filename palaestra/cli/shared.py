"""What the `palaestra` subcommands share: the consoles, the one-line error exit, KEY=VALUE options, and
output for scripts (listings that stay whole in a pipe, JSON on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from palaestra.terminal import error_line, make_console

if TYPE_CHECKING:
    from palaestra.agents.base import Policy

__all__ = [
    "JSON_HELP",
    "check_flags",
    "console",
    "err_console",
    "fail",
    "load_policy",
    "parse_kwargs",
    "print_json",
    "print_listing",
]

JSON_HELP = "Print JSON to stdout (for scripts) instead of tables."

console = make_console()
err_console = make_console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: MESSAGE` as one line (never wrapped at the terminal width) and exit with `code`."""
    error_line(err_console, message)
    return typer.Exit(code)


def parse_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """Parse repeated KEY=VALUE options; values are YAML scalars (`3`, `true`, `0.5`, `text`)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"expected KEY=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(value) if value else ""
    return out


def check_flags(*checks: tuple[bool, str]) -> None:
    """Fail with the message of the first check that does not hold."""
    for ok, message in checks:
        if not ok:
            raise fail(message)


def load_policy(spec: str, options: dict[str, Any]) -> Policy:
    """Build a policy whose spec passed `check_spec`; a model that fails to load is one error line."""
    from palaestra.agents.spec import make_policy

    try:
        return make_policy(spec, **options)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None


def print_json(data: Any) -> None:
    """Write `data` to stdout as JSON: plain text, no markup, no wrapping (values JSON lacks become text)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_listing(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    records: Sequence[dict[str, Any]],
    *,
    as_json: bool,
) -> None:
    """Print a listing: `records` as JSON with `as_json`; else a rich table in a terminal, and one
    tab-separated line per row (whole ids, nothing wrapped or cut, no header) anywhere else (a pipe, a file).
    """
    if as_json:
        print_json(list(records))
    elif console.is_terminal:
        table = Table(title=title)
        for column in header:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
    else:
        for row in rows:
            sys.stdout.write("\t".join(" ".join(cell.split()) for cell in row) + "\n")
        sys.stdout.flush()
