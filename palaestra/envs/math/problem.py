"""`Problem`, what every math generator returns, and the draws the generators share.

`generators` and `word_problems` both build on this module, so neither imports the other's internals
(`_int` and `_pick` are private to this package's generators).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Problem"]


@dataclass(frozen=True)
class Problem:
    """A generated problem before it is given an id and a split."""

    question: str
    answer: str
    solution: str


def _int(rng: np.random.Generator, low: int, high: int) -> int:
    """A uniform integer in [low, high] (both inclusive)."""
    return int(rng.integers(low, high + 1))


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    """One of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]
