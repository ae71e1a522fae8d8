"""Guess my city: name a city from clues that go from vague to specific.

The bundled data (`data/cities.json`) holds 70+ cities, each with six clues in a fixed order of kinds:
region (continent), climate, geography (river, coast, altitude), culture (a famous dish, music, sport),
landmark, identity (country or status, often all but the answer).

Each episode the env picks a city and shows its first clue. The player guesses with the city's name in
square brackets, e.g. `[Paris]` (the last `[...]` in the reply counts; case, accents, punctuation, a
leading "the" and anything after a comma are ignored, and alternative names such as "Bombay" or "NYC"
count). `[pass]` asks for the next clue without guessing. A wrong guess, a pass or an unreadable reply
each use one turn and reveal the next clue; the game ends at the first correct guess or once every clue
has been answered (max guesses = clues available).

Difficulty sets how many clues there are: "easy" all six, "medium" the first five (no identity clue),
"hard" the first four (no landmark either); harder levels keep the vaguer clues.

Rewards: 1.0 for a correct guess, else 0. With `shaped=True`, a correct guess earns
`1 - 0.1 * (clues seen - 1)` instead: fewer clues used, more reward.

Expert (`info["expert_action"]`): the simplest acceptable one: it reads the hidden answer and guesses
it after the first clue, like an oracle. It is an upper bound, not a model of reasoning from clues.
Info keys besides the standard ones: `expert_action`, `clues_shown`, `guesses_left`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.parsing import MOVE_FORMAT, last_bracketed
from palaestra.envs.games.twenty_questions import normalise

__all__ = ["CLUES_BY_DIFFICULTY", "City", "CityCluesEnv", "load_cities"]

CLUES_BY_DIFFICULTY: dict[str, int] = {"easy": 6, "medium": 5, "hard": 4}
CLUE_COST = 0.1
"""Shaped mode: reward lost per clue seen before the correct guess."""
_PASSES = frozenset(("pass", "skip", "next", "next clue"))


def _key(name: str) -> str:
    """The comparable form of a city name: normalised words, no leading "the" / "it is"."""
    words = normalise(name.split(",")[0])
    for prefix in (["it", "is"], ["its"], ["is", "it"], ["the"]):
        if words[: len(prefix)] == prefix:
            words = words[len(prefix) :]
    return " ".join(words)


@dataclass(frozen=True)
class City:
    """A city of the game.

    Attributes:
        name: the canonical name, e.g. "Rio de Janeiro".
        aliases: other accepted names, e.g. ("Rio",).
        clues: six clues, vaguest first (region, climate, geography, culture, landmark, identity).
    """

    name: str
    aliases: tuple[str, ...]
    clues: tuple[str, ...]

    @functools.cached_property
    def keys(self) -> frozenset[str]:
        return frozenset(
            {_key(n) for n in (self.name, *self.aliases)} | {" ".join(normalise(n)) for n in self.aliases}
        )

    def matches(self, guess: str) -> bool:
        """Whether `guess` names this city (see the module docstring for what is ignored)."""
        return _key(guess) in self.keys or " ".join(normalise(guess)) in self.keys


@functools.cache
def load_cities() -> tuple[City, ...]:
    """The bundled cities (`palaestra/envs/games/data/cities.json`), loaded once."""
    text = resources.files("palaestra.envs.games").joinpath("data/cities.json").read_text(encoding="utf-8")
    return tuple(City(c["name"], tuple(c["aliases"]), tuple(c["clues"])) for c in json.loads(text)["cities"])


class CityCluesEnv(TextEnv):
    """Guess the city from successive clues (see the module docstring).

    Args:
        difficulty: "easy" (6 clues), "medium" (5) or "hard" (4).
        shaped: reward a correct guess by how few clues it needed.
        render_mode: None or "ansi".

    Reset options: `city` (a city name) picks the city instead of the seed.
    """

    def __init__(self, *, difficulty: str = "medium", shaped: bool = False, render_mode: str | None = None):
        if difficulty not in CLUES_BY_DIFFICULTY:
            raise ValueError(f"difficulty={difficulty!r}; choose one of {tuple(CLUES_BY_DIFFICULTY)}")
        self.num_clues = CLUES_BY_DIFFICULTY[difficulty]
        super().__init__(max_turns=self.num_clues, render_mode=render_mode)
        self.difficulty, self.shaped = difficulty, bool(shaped)
        self.cities = load_cities()
        self.city = self.cities[0]
        self.system_prompt = (
            "Let's play 'guess my city'. I am thinking of a city somewhere in the world and give you one "
            f"clue at a time, from vague to specific ({self.num_clues} clues in all). After each clue, "
            "guess the city by writing its name in square brackets, e.g. [Paris], or write [pass] to "
            "see the next clue. A wrong guess, a pass or a reply without a bracketed guess uses up a "
            f"clue; you have {self.num_clues} guesses in all. Guess early: fewer clues are better. "
            + MOVE_FORMAT.format(example="Paris")
        )

    def _clue(self, index: int) -> str:
        return f"Clue {index + 1} of {self.num_clues}: {self.city.clues[index]}"

    def _info(self, shown: int, left: int) -> dict[str, Any]:
        return {"expert_action": f"[{self.city.name}]", "clues_shown": shown, "guesses_left": left}

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        options = dict(options or {})
        wanted = options.pop("city", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; CityCluesEnv accepts 'city'")
        if wanted is None:
            self.city = self.cities[int(self.np_random.integers(len(self.cities)))]
        else:
            found = [c for c in self.cities if c.matches(str(wanted))]
            if not found:
                raise ValueError(f"city={wanted!r} is not one of the {len(self.cities)} bundled cities")
            self.city = found[0]
        task_id = f"city_clues/{self.difficulty}/{self.city.name}"
        text = f"Guess my city! {self._clue(0)}"
        return text, {"task_id": task_id, **self._info(1, self.num_clues)}

    def _step(self, action: str) -> StepOutcome:
        used = self.turn + 1  # replies so far, this one included; also the clues seen so far
        guess = last_bracketed(action)
        info: dict[str, Any] = {"role": "user"}
        if guess is not None and self.city.matches(guess):
            reward = 1.0 - CLUE_COST * (used - 1) if self.shaped else 1.0
            info.update(self._info(used, self.num_clues - used))
            text = f"Correct! It is {self.city.name} (after {used} clue{'s' if used > 1 else ''})."
            return StepOutcome(text, reward=reward, terminated=True, success=True, info=info)
        error = None
        if guess is None:
            error = "no guess in square brackets found"
            text = "I could not find a guess in square brackets, e.g. [Paris]; that used a guess."
        elif _key(guess) in _PASSES:
            text = "Pass."
        else:
            text = f'No, it is not "{guess}".'
        done = used >= self.num_clues
        shown = used if done else used + 1
        info.update(self._info(shown, self.num_clues - used))
        text += f" No guesses left: it was {self.city.name}." if done else f" {self._clue(used)}"
        return StepOutcome(text, terminated=done, format_error=error, info=info)
