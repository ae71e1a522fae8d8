"""What the grid puzzles share: difficulty names, [up]/[down]/[left]/[right] moves, grid rendering
with coordinates, and shaped rewards from a progress measure."""

from __future__ import annotations

from collections.abc import Sequence

from palaestra.envs.games.parsing import last_bracketed

__all__ = [
    "DIFFICULTIES",
    "DIRECTIONS",
    "SHAPING_SCALE",
    "Progress",
    "check_difficulty",
    "parse_direction",
    "render_grid",
]

DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")
DIRECTIONS: dict[str, tuple[int, int]] = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
"""Move name -> (row delta, column delta); rows grow downwards."""
_ALIASES = {**{name: name for name in DIRECTIONS}, "u": "up", "d": "down", "l": "left", "r": "right"}
SHAPING_SCALE = 0.5
"""Shaped rewards: the progress part of the return is at most this; success tops the return up to 1."""


def check_difficulty(difficulty: str) -> str:
    """Return `difficulty` or raise ValueError naming the choices."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty={difficulty!r}; choose one of {DIFFICULTIES}")
    return difficulty


def parse_direction(reply: str) -> tuple[str | None, str | None]:
    """(direction, None) for a reply ending in [up]/[down]/[left]/[right] or [U]/[D]/[L]/[R], else
    (None, why it could not be read). Case-insensitive."""
    move = last_bracketed(reply)
    if move is None:
        return None, "no move in square brackets found in the reply"
    direction = _ALIASES.get(move.lower())
    if direction is None:
        return None, f"[{move}] is not a move; use [up], [down], [left] or [right]"
    return direction, None


def render_grid(rows: Sequence[str], sep: str = " ") -> str:
    """The grid with column numbers on top and row numbers on the left (0-based, mod 10 above 9)."""
    width = len(rows[0]) if rows else 0
    pad = len(str(max(len(rows) - 1, 0)))
    header = " " * (pad + 1) + sep.join(str(c % 10) for c in range(width))
    return "\n".join([header] + [f"{r:>{pad}} " + sep.join(row) for r, row in enumerate(rows)])


class Progress:
    """Shaped rewards from a progress measure in [0, 1] (1 = solved).

    Each step earns `SHAPING_SCALE` times the amount by which progress beats its best value so far
    (so going back and forth earns nothing twice); the step that solves the task earns whatever brings
    the episode return to exactly 1.0. A failed episode therefore returns less than `SHAPING_SCALE`.
    """

    def __init__(self, start: float = 0.0):
        self.best, self.total = min(max(start, 0.0), 1.0), 0.0

    def reward(self, progress: float, *, success: bool) -> float:
        if success:
            reward = 1.0 - self.total
        else:
            progress = min(max(progress, 0.0), 1.0)
            reward = SHAPING_SCALE * max(progress - self.best, 0.0)
            self.best = max(self.best, progress)
        self.total += reward
        return reward
