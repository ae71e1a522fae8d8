"""The action format every game shares: the move goes in square brackets, the last bracket counts.

A reply may reason first ("The middle is free, so I take it. [5]"); the move is the content of the
last `[...]` in the reply, stripped. Games document what goes inside (a word, a number, a cell).
"""

from __future__ import annotations

import re

__all__ = ["MOVE_FORMAT", "last_bracketed"]

MOVE_FORMAT = "Put your move in square brackets at the end of your reply, e.g. [{example}]."

_BRACKET_RE = re.compile(r"\[([^\[\]\n]{1,200})\]")


def last_bracketed(reply: str) -> str | None:
    """The stripped content of the last `[...]` in `reply` (one line, <= 200 chars), or None."""
    found = _BRACKET_RE.findall(reply)
    return (found[-1].strip() or None) if found else None
