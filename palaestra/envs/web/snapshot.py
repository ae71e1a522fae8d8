"""Compact text rendering of Playwright's AI-mode accessibility snapshot.

`page.aria_snapshot(mode="ai")` renders the page as a YAML-like tree whose elements carry stable
references (`[ref=e12]`: an element keeps its reference while it stays on the page). The agent sees the
same tree with the references shortened to `[12]`, and without the parts that only cost tokens: link
targets (`/url:` lines) and cursor hints.
"""

from __future__ import annotations

import re

__all__ = ["compact_snapshot", "snapshot_ids"]

_REF = re.compile(r"\[ref=e(\d+)\]")
_NOISE = re.compile(r" \[cursor=\w+\]")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def compact_snapshot(snapshot: str) -> str:
    """The snapshot as the agent sees it: `[ref=e12]` -> `[12]`, no `/url:` lines or cursor hints."""
    kept = [
        _REF.sub(r"[\1]", _NOISE.sub("", line))
        for line in snapshot.splitlines()
        if not line.lstrip().startswith("- /url:")
    ]
    for i, line in enumerate(kept):
        # a node whose only children were dropped no longer introduces a block
        has_children = i + 1 < len(kept) and _indent(kept[i + 1]) > _indent(line)
        if line.endswith(":") and not has_children:
            kept[i] = line[:-1]
    return "\n".join(kept)


def snapshot_ids(snapshot: str) -> frozenset[str]:
    """The element references (`e12`) present in a snapshot."""
    return frozenset(f"e{n}" for n in _REF.findall(snapshot))
