"""Compact text rendering of Playwright's AI-mode accessibility snapshot.

`page.aria_snapshot(mode="ai")` renders the page as a YAML-like tree whose elements carry stable
references (`[ref=e12]`: an element keeps its reference while it stays on the page). The agent sees the
same tree with the references shortened to `[12]`, and without the parts that only cost tokens: link
targets (`/url:` lines) and cursor hints.
"""

from __future__ import annotations

import re

__all__ = ["compact_snapshot", "find_ref", "snapshot_ids"]

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


def find_ref(snapshot: str, role: str | None, name: str | None, nth: int = 0, count: int = 1) -> str | None:
    """The reference of the `nth` of `count` elements with this role and accessible name in a snapshot.

    Lines look like `- button "Save" [ref=e12]` (plus state flags such as `[checked]`). Returns None when
    the role is unknown or the snapshot does not hold exactly `count` such elements (the guess of role
    and name was off; the caller then asks Playwright).
    """
    if not role:
        return None
    head = f"- {role}" if not name else f"- {role} {_quote(name)}"
    refs = []
    for line in snapshot.splitlines():
        text = line.lstrip()
        if text.startswith(head) and text[len(head) : len(head) + 2] in (" [", ":", ""):
            match = _REF.search(text)
            if match:
                refs.append(f"e{match.group(1)}")
    return refs[nth] if len(refs) == count and 0 <= nth < count else None


def _quote(name: str) -> str:
    """A name as the snapshot quotes it (YAML-style double quotes)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
