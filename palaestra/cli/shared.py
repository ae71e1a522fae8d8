"""What the `palaestra` subcommands share: the consoles, the one-line error exit, KEY=VALUE options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
import yaml

from palaestra.terminal import error_line, make_console

if TYPE_CHECKING:
    from palaestra.agents.base import Policy

__all__ = ["check_flags", "console", "err_console", "fail", "load_policy", "parse_kwargs"]

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
