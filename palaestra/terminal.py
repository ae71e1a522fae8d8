"""The command line's consoles: output that reads well in a terminal and stays whole in a pipe."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.markup import escape

__all__ = ["error_line", "make_console"]

_PIPE_WIDTH = 200


def make_console(*, stderr: bool = False) -> Console:
    """A rich console whose plain lines never wrap.

    In a terminal tables fit its width; elsewhere (a pipe, a file, a test's captured output) they get
    200 columns (or `COLUMNS`, if wider), so ids and paths stay on one line.
    """
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty():
        columns = os.environ.get("COLUMNS", "")
        width = max(_PIPE_WIDTH, int(columns) if columns.isdigit() else 0)
    return Console(stderr=stderr, soft_wrap=True, width=width)


def error_line(console: Console, message: str) -> None:
    """Print `error: MESSAGE` on one line (the message is text, not rich markup)."""
    console.print("[bold red]error:[/]", escape(message), soft_wrap=True)
