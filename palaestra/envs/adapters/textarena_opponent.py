"""Moves for the scripted "random" player of TextArena's multi-player games to try, most likely first.

TextArena lists the legal moves of only some games ("Available moves: [0], [4]"); the others show
the move format in their rules, often with placeholders ("[play X] where X is the position of the
card", "[swap X Y]", "[Propose] $X.XX") or with an example that breaks a rule of the current state
("[A4 B2 C2]" when 20 units must be allocated). `candidate_moves` turns what the game showed into
concrete moves; the random player (`textarena.random_opponent`) tries them on a copy of the game and
plays the first one TextArena accepts, so a game no longer ends because its scripted player cannot
move.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

__all__ = ["candidate_moves", "example_lines"]

_SLOT_RE = re.compile(
    r"<[\w\s-]{1,20}>|(?<=[\s\[,(])(?:[A-Z]|row|col|column|x|y|n|number|index|position)(?=[\s\],)])"
)
_MONEY_RE = re.compile(r"\bX+\.X+\b")
_INT_RE = re.compile(r"\d+")
_TRIM = "\"'`.,;: \t"  # around a move written out in a sentence
SLOT_VALUES = 14
"""Placeholders are filled with an integer in [0, SLOT_VALUES): board rows, card positions, hands."""


def example_lines(text: str, max_chars: int = 80) -> list[str]:
    """The moves written out in `text`'s lines: each line from its first "[" to its end, without
    quotes and trailing punctuation, when short and plain ("[Propose] CCAACCCC", "[place () {(3,2): [C0]}]";
    not a row of a board drawing)."""
    out = []
    for line in text.splitlines():
        start = line.find("[")
        move = line[start:].strip(_TRIM) if start >= 0 else ""
        if move.startswith("[") and len(move) <= max_chars and move.isascii() and "  " not in move:
            out.append(move)
    return out


def _fill(template: str, rng: np.random.Generator) -> str:
    """`template` with its placeholders ("X", "row", "$X.XX") replaced by random values."""
    move = _SLOT_RE.sub(lambda _: str(int(rng.integers(SLOT_VALUES))), template)
    return _MONEY_RE.sub(lambda _: f"{int(rng.integers(3))}.{int(rng.integers(100)):02d}", move)


def _redistribute(move: str, totals: list[int], rng: np.random.Generator) -> str:
    """`move`'s integers (two or more) redrawn as a random split of one of `totals`."""
    count = len(_INT_RE.findall(move))
    if count < 2 or not totals:
        return move
    total = int(rng.choice(totals))
    cuts = np.sort(rng.integers(0, total + 1, count - 1))
    parts = iter(np.diff(np.concatenate([[0], cuts, [total]])).tolist())
    return _INT_RE.sub(lambda _: str(next(parts)), move)


def candidate_moves(
    listed: list[str] | None,
    shown: list[str],
    text: str,
    rng: np.random.Generator,
    *,
    limit: int = 48,
) -> Iterator[str]:
    """Distinct moves to try, at most `limit`: the listed legal moves (shuffled), then the moves the
    game showed (shuffled), then variants of those with placeholders filled and numbers redrawn as a
    split of a number `text` mentions.

    Args:
        listed: the moves the game lists as legal now, if it lists them.
        shown: bracketed tokens and example lines the game showed the player.
        text: what the game said to the player since its last move (its numbers are the totals).
        rng: the player's generator.
        limit: the most moves yielded.
    """
    seen: set[str] = set()
    first = [listed[i] for i in rng.permutation(len(listed))] if listed else []
    first += [shown[i] for i in rng.permutation(len(shown))]
    for move in first:
        if len(seen) >= limit:
            return
        if move not in seen:
            seen.add(move)
            yield move
    templates = shown or ["[0]"]
    totals = [n for n in map(int, _INT_RE.findall(text)) if 0 < n <= 100]
    for _ in range(4 * limit):  # variants repeat; this bounds the draws
        if len(seen) >= limit:
            return
        move = _fill(templates[int(rng.integers(len(templates)))], rng)
        if rng.random() < 0.5:
            move = _redistribute(move, totals, rng)
        if move not in seen:
            seen.add(move)
            yield move
