"""Referential game: describe the target item so that a listener can pick it out.

The player is the speaker. The env shows 3-6 items, each a combination of attribute values

    size: small, medium, large      pattern: plain, striped, dotted, checkered
    colour: red, blue, green, yellow, purple, orange      shape: circle, square, triangle, star, heart, diamond

with one marked as the target. The player replies with a short description in square brackets, e.g.
`[small red circle]` (the last `[...]` in the reply counts), of at most `max_words` words (words are
separated by spaces; "the" counts). A listener then picks the item the description means; the game
succeeds when it picks the target. One description per episode: a reply without brackets or over the
word limit is a format error (the player is told why and tries again, up to `max_format_errors` times).

The listener is pluggable: any callable `(description, items) -> index | None` (items in the order
shown, None for "cannot tell"), so an LLM listener can replace the scripted one. The default,
`attribute_listener`, reads attribute words (synonyms and plurals too: big/large, tiny/small,
spotted/dots, chequered, round, ...) and scores each item by how many of its attribute values the
description mentions; the item with the highest score is picked, and a tie for the highest (no
attribute word at all included) is a failure. Words it does not know are ignored.

Difficulty:
    easy: 3 items that vary in size, colour and shape (all plain); at most 4 words.
    medium: 4-5 items with all four attributes, each distractor differing from the target in one or
        two attributes; at most 3 words.
    hard: 6 items, distractors differing in one or two attributes, and no single word singles the
        target out; at most 2 words.
Every episode is solvable within the limit.

Rewards: 1.0 when the listener picks the target, else 0. With `shaped=True`, a failed description
earns `0.2 * (distractors the default scoring ranks below the target) / (distractors)`.

Expert (`info["expert_action"]`): the shortest combination of the target's attribute values that no
distractor shares (fewest words, attributes tried in the order size, pattern, colour, shape), written
in that order, e.g. `[small striped circle]`. It is computed with `attribute_listener` even when
another listener is plugged in.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.parsing import last_bracketed
from palaestra.envs.games.twenty_questions import normalise

__all__ = ["ATTRIBUTES", "DIFFICULTIES", "Item", "Listener", "ReferentialEnv", "attribute_listener"]

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "size": ("small", "medium", "large"),
    "pattern": ("plain", "striped", "dotted", "checkered"),
    "colour": ("red", "blue", "green", "yellow", "purple", "orange"),
    "shape": ("circle", "square", "triangle", "star", "heart", "diamond"),
}
"""Attribute -> values, in the order a description lists them."""

_SYNONYMS: dict[str, str] = {
    "tiny": "small", "little": "small", "big": "large", "huge": "large", "solid": "plain",
    "stripes": "striped", "stripy": "striped", "stripey": "striped", "dots": "dotted", "spotted": "dotted",
    "spots": "dotted", "spotty": "dotted", "polka": "dotted", "checked": "checkered", "checks": "checkered",
    "chequered": "checkered", "checkerboard": "checkered", "round": "circle", "circular": "circle",
    "triangular": "triangle", "violet": "purple", "diamonds": "diamond",
}  # fmt: skip
_WORDS: dict[str, tuple[str, str]] = {v: (a, v) for a, values in ATTRIBUTES.items() for v in values}


@dataclass(frozen=True)
class Item:
    """One object on the table: a value per attribute ("pattern" is "plain" when unused)."""

    size: str
    pattern: str
    colour: str
    shape: str

    def value(self, attribute: str) -> str:
        return getattr(self, attribute)

    def describe(self, attributes: Sequence[str] = tuple(ATTRIBUTES)) -> str:
        return " ".join(self.value(a) for a in ATTRIBUTES if a in attributes)


Listener = Callable[[str, Sequence[Item]], int | None]
"""(description, items in the order shown) -> index of the picked item, or None when it cannot tell."""


def mentioned_values(description: str) -> set[tuple[str, str]]:
    """The (attribute, value) pairs a description names (synonyms and plurals included)."""
    found = set()
    for word in normalise(description):
        word = _SYNONYMS.get(word, word)
        if word not in _WORDS and word.endswith("s"):
            word = _SYNONYMS.get(word[:-1], word[:-1])
        if word in _WORDS:
            found.add(_WORDS[word])
    return found


def attribute_scores(description: str, items: Sequence[Item]) -> list[int]:
    """How many of each item's attribute values the description mentions."""
    named = mentioned_values(description)
    return [sum((a, item.value(a)) in named for a in ATTRIBUTES) for item in items]


def attribute_listener(description: str, items: Sequence[Item]) -> int | None:
    """The scripted listener: the item with the most mentioned values; a tie for the most -> None."""
    scores = attribute_scores(description, items)
    best = max(scores)
    return scores.index(best) if scores.count(best) == 1 else None


def shortest_description(items: Sequence[Item], target: int, attributes: Sequence[str]) -> str:
    """The fewest target values that `attribute_listener` resolves to the target (all of them if none)."""
    order = [a for a in ATTRIBUTES if a in attributes]
    for k in range(1, len(order) + 1):
        for subset in itertools.combinations(order, k):
            words = items[target].describe(subset)
            if attribute_listener(words, items) == target:
                return words
    return items[target].describe(order)


_LEVELS: dict[str, dict[str, Any]] = {
    "easy": {"items": (3, 3), "attributes": ("size", "colour", "shape"), "max_words": 4, "min_words": 1},
    "medium": {"items": (4, 5), "attributes": tuple(ATTRIBUTES), "max_words": 3, "min_words": 1},
    "hard": {"items": (6, 6), "attributes": tuple(ATTRIBUTES), "max_words": 2, "min_words": 2},
}
DIFFICULTIES: tuple[str, ...] = tuple(_LEVELS)
SHAPED_FAILURE = 0.2


class ReferentialEnv(TextEnv):
    """The speaker's side of a referential game (see the module docstring).

    Args:
        difficulty: "easy", "medium" or "hard".
        listener: picks an item from a description; `attribute_listener` by default.
        max_words: word limit of a description; the difficulty's (4 / 3 / 2) by default.
        max_format_errors: unreadable or over-long replies allowed before the episode ends.
        shaped: give failed descriptions partial credit.
        render_mode: None or "ansi".
    """

    def __init__(
        self,
        *,
        difficulty: str = "medium",
        listener: Listener | None = None,
        max_words: int | None = None,
        max_format_errors: int = 2,
        shaped: bool = False,
        render_mode: str | None = None,
    ):
        if difficulty not in _LEVELS:
            raise ValueError(f"difficulty={difficulty!r}; choose one of {DIFFICULTIES}")
        level = _LEVELS[difficulty]
        if max_words is not None and max_words < level["max_words"]:
            raise ValueError(
                f"max_words={max_words}, but {difficulty} episodes may need {level['max_words']} words; "
                f"leave it None or raise it"
            )
        super().__init__(max_turns=1 + max_format_errors, render_mode=render_mode)
        self.difficulty, self.shaped = difficulty, bool(shaped)
        self.listener: Listener = listener or attribute_listener
        self.max_words = max_words or level["max_words"]
        self.attributes: tuple[str, ...] = level["attributes"]
        self.items: list[Item] = []
        self.target = 0
        self.system_prompt = (
            "You are the speaker in a reference game. You see a few items (each has a size, a colour, a "
            "shape and sometimes a pattern); one is marked as the target. Describe the target so that a "
            "listener, who sees the same items in the same order but not the mark, can pick it out. The "
            "listener counts how many of each item's attribute values your description names and picks "
            "the item with the most; a tie for the most means it cannot tell and you lose. Use at most "
            f"{self.max_words} words. Put the description in square brackets at the end of your reply, "
            "e.g. [small red circle]. You give one description."
        )

    # -- episode set-up ----------------------------------------------------------------------------
    def _random_item(self) -> Item:
        values = {a: ATTRIBUTES[a][int(self.np_random.integers(len(ATTRIBUTES[a])))] for a in self.attributes}
        return Item(**{"pattern": "plain", **values})

    def _distractor(self, target: Item) -> Item:
        changed = self.np_random.choice(
            len(self.attributes), int(self.np_random.integers(1, 3)), replace=False
        )
        values = {a: target.value(a) for a in ATTRIBUTES}
        for a in (self.attributes[int(i)] for i in changed):
            others = [v for v in ATTRIBUTES[a] if v != values[a]]
            values[a] = others[int(self.np_random.integers(len(others)))]
        return Item(**values)

    def _draw(self) -> tuple[list[Item], int]:
        level = _LEVELS[self.difficulty]
        low, high = level["items"]
        for _ in range(10_000):
            n = int(self.np_random.integers(low, high + 1))
            target = self._random_item()
            items = [target]
            for _ in range(n - 1):
                items.append(self._random_item() if self.difficulty == "easy" else self._distractor(target))
            if len(set(items)) < n:
                continue
            order = [int(i) for i in self.np_random.permutation(n)]
            items = [items[i] for i in order]
            index = order.index(0)
            need = len(shortest_description(items, index, self.attributes).split())
            if level["min_words"] <= need <= self.max_words:
                return items, index
        raise AssertionError(f"no {self.difficulty} referential episode found in 10,000 draws")

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; ReferentialEnv takes none")
        self.items, self.target = self._draw()
        lines = [
            f"{i + 1}. {item.describe(self.attributes)}" + ("   <- TARGET" if i == self.target else "")
            for i, item in enumerate(self.items)
        ]
        text = (
            "Items:\n" + "\n".join(lines) + f"\nDescribe item {self.target + 1} (the target) in at most "
            f"{self.max_words} words, in square brackets."
        )
        code = ";".join(item.describe() for item in self.items) + f"|{self.target}"
        task_id = f"referential/{self.difficulty}/{hashlib.sha1(code.encode()).hexdigest()[:12]}"
        return text, {"task_id": task_id, **self._info()}

    def _info(self) -> dict[str, Any]:
        words = shortest_description(self.items, self.target, self.attributes)
        return {"expert_action": f"[{words}]", "target": self.target, "max_words": self.max_words}

    # -- a turn ------------------------------------------------------------------------------------
    def _step(self, action: str) -> StepOutcome:
        info = {"role": "user", **self._info()}
        description = last_bracketed(action)
        error = None
        if description is None:
            error = "no description in square brackets found"
        elif len(description.split()) > self.max_words:
            error = f"the description has {len(description.split())} words; the limit is {self.max_words}"
        if error is not None or description is None:
            left = self.max_turns - self.turn - 1
            text = f"Invalid reply: {error}. Write at most {self.max_words} words in brackets, e.g. [red circle]."
            text += " Try again." if left > 0 else " No tries left."
            return StepOutcome(text, terminated=left <= 0, format_error=error, info=info)
        pick = self.listener(description, list(self.items))
        if not isinstance(pick, int) or not 0 <= pick < len(self.items):
            pick = None  # a listener's "cannot tell" or an answer that is no item
        info["listener_pick"] = pick
        if pick == self.target:
            return StepOutcome(
                f"The listener picked item {pick + 1}: the target. Well described!",
                reward=1.0,
                terminated=True,
                success=True,
                info=info,
            )
        reward = 0.0
        if self.shaped:
            scores = attribute_scores(description, self.items)
            below = sum(s < scores[self.target] for i, s in enumerate(scores) if i != self.target)
            reward = SHAPED_FAILURE * below / (len(self.items) - 1)
        what = "could not tell which item you meant" if pick is None else f"picked item {pick + 1}"
        text = f"The listener {what}; the target was item {self.target + 1}."
        return StepOutcome(text, reward=reward, terminated=True, info=info)
