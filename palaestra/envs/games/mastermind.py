"""Mastermind: crack a hidden code of coloured pegs from black/white peg feedback.

Rules told to the player: the code is `pegs` colours, each a number 1..`colours`; after each guess the
env answers with black pegs (right colour in the right place) and white pegs (right colour in the
wrong place; each peg of the code and of the guess is counted at most once, blacks first: see
`score_code`). `max_guesses` (10) guesses. Move format: the colours separated by spaces in brackets,
`[1 2 3 4]` (`[1234]` and `[1,2,3,4]` are accepted too).

Difficulty (pegs x colours): easy 4 x 6 with no colour repeated in the code (360 codes); medium 4 x 6,
repeats allowed (1,296 codes); hard 5 x 8, repeats allowed (32,768 codes).

Expert (`expert_action`): plays a code consistent with all feedback so far, choosing among up to 40
of them the one that splits the remaining candidates into the most feedback classes (a cheap cousin
of Knuth's minimax); it wins every game within 10 guesses at all difficulties.

Rewards and format errors follow `palaestra.envs.games.guess_number.PuzzleEnv`; the shaped-reward
progress phi is the most black pegs of any guess so far divided by `pegs`.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from palaestra.envs.games.parsing import MOVE_FORMAT
from palaestra.envs.games.puzzle import PuzzleEnv, pick_difficulty

__all__ = ["DIFFICULTIES", "MAX_GUESSES", "MastermindEnv", "MastermindSetting", "all_codes", "score_code"]

MAX_GUESSES = 10


@dataclass(frozen=True)
class MastermindSetting:
    """A difficulty preset: codes of `pegs` colours out of `colours`; `repeats`: colours may repeat."""

    pegs: int
    colours: int
    repeats: bool


DIFFICULTIES: dict[str, MastermindSetting] = {
    "easy": MastermindSetting(4, 6, False),
    "medium": MastermindSetting(4, 6, True),
    "hard": MastermindSetting(5, 8, True),
}


def score_code(guess: Sequence[int], code: Sequence[int]) -> tuple[int, int]:
    """(black, white) pegs for `guess` against `code`.

    black: positions with the right colour; white: the colour matches that are not black, where each
    colour counts min(copies in guess, copies in code) matches.
    """
    black = sum(g == c for g, c in zip(guess, code, strict=True))
    matches = sum(min(guess.count(c), code.count(c)) for c in set(guess))
    return black, matches - black


@functools.cache
def all_codes(setting: MastermindSetting) -> tuple[np.ndarray, np.ndarray]:
    """Every code of `setting` in lexicographic order and its colour counts.

    Returns:
        codes: (M, pegs) int8, colours 1..colours.
        counts: (M, colours + 1) int8, counts[m, c] = copies of colour c in code m (column 0 unused).
    """
    colours = range(1, setting.colours + 1)
    rows: Iterator[tuple[int, ...]]
    if setting.repeats:
        rows = itertools.product(colours, repeat=setting.pegs)
    else:
        rows = itertools.permutations(colours, setting.pegs)
    codes = np.array(list(rows), dtype=np.int8)  # (M, pegs)
    counts = np.zeros((len(codes), setting.colours + 1), dtype=np.int8)  # (M, colours + 1)
    for j in range(setting.pegs):
        counts[np.arange(len(codes)), codes[:, j]] += 1
    return codes, counts


def _scores(guess: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Feedback of the code `guess` (pegs,) against `codes` (n, pegs) with colour `counts`
    (n, colours + 1), as black * (pegs + 1) + white (n,)."""
    guess_counts = np.bincount(guess, minlength=counts.shape[1])  # (colours + 1,)
    black = (codes == guess).sum(axis=1)  # (n,)
    matches = np.minimum(counts, guess_counts).sum(axis=1)  # (n,)
    return black * (codes.shape[1] + 1) + (matches - black)


def best_code(setting: MastermindSetting, candidates: np.ndarray, max_options: int = 40) -> int:
    """Of up to `max_options` evenly spread candidates, the code index giving the most feedback classes."""
    if len(candidates) <= 2:
        return int(candidates[0])
    codes, counts = all_codes(setting)
    among, among_counts = codes[candidates], counts[candidates]  # (n, pegs), (n, colours + 1)
    options = candidates[:: -(-len(candidates) // max_options)]
    classes = [np.count_nonzero(np.bincount(_scores(codes[g], among, among_counts))) for g in options]
    return int(options[int(np.argmax(classes))])


@functools.cache
def _opener(setting: MastermindSetting) -> int:
    codes, _ = all_codes(setting)
    return best_code(setting, np.arange(len(codes)))


class MastermindEnv(PuzzleEnv):
    """Mastermind against a code drawn uniformly from the difficulty's codes (see the module docstring).

    Args:
        difficulty: "easy", "medium" or "hard" (see `DIFFICULTIES`).
        shaped: dense progress rewards.
        max_format_errors: invalid moves allowed per game; one more loses it.
        render_mode: None or "ansi".

    Reset options: `answer` (a code such as "1 2 3 4" or [1, 2, 3, 4]) fixes the hidden code.
    """

    game = "mastermind"

    def __init__(
        self,
        *,
        difficulty: str = "medium",
        shaped: bool = False,
        max_format_errors: int = 3,
        render_mode: str | None = None,
    ):
        self.setting = pick_difficulty(DIFFICULTIES, difficulty)
        super().__init__(
            difficulty=difficulty,
            max_moves=MAX_GUESSES,
            shaped=shaped,
            max_format_errors=max_format_errors,
            render_mode=render_mode,
        )
        pegs, colours = self.setting.pegs, self.setting.colours
        self.example_move = " ".join(str(i + 1) for i in range(pegs))
        self.max_guesses = MAX_GUESSES
        repeats = (
            "Colours may repeat in the code."
            if self.setting.repeats
            else "The code uses each colour at most once."
        )
        self.system_prompt = (
            f"Play Mastermind. A hidden code is {pegs} colours in a row; colours are the numbers 1 to "
            f"{colours}. {repeats} After each guess you get black pegs (a right colour in the right place) "
            "and white pegs (a right colour in the wrong place; each peg of the code and of your guess "
            f"counts at most once). Find the code within {MAX_GUESSES} guesses. "
            f"{MOVE_FORMAT.format(example=self.example_move)} Put the {pegs} colours, separated by "
            "spaces, in the brackets."
        )
        self.answer: tuple[int, ...] = ()
        self.history: list[tuple[tuple[int, ...], int, int]] = []
        self._candidates = np.arange(0)

    def _new_game(self, options: dict[str, Any]) -> tuple[str, str]:
        answer = options.pop("answer", None)
        if options:
            raise ValueError(
                f"unknown reset options {sorted(options)}; {type(self).__name__} accepts 'answer'"
            )
        codes, _ = all_codes(self.setting)
        if answer is None:
            self.answer = tuple(int(c) for c in codes[int(self.np_random.integers(len(codes)))])
        else:
            text = answer if isinstance(answer, str) else " ".join(str(c) for c in answer)
            code, error = self._parse(text)
            if code is None or (not self.setting.repeats and len(set(code)) < len(code)):
                raise ValueError(f"options['answer']={answer!r} is not a {self.difficulty} code ({error})")
            self.answer = code
        self.history, self._candidates = [], np.arange(len(codes))
        observation = (
            f"Find the code: {self.setting.pegs} colours out of 1-{self.setting.colours}. You have "
            f"{MAX_GUESSES} guesses. {MOVE_FORMAT.format(example=self.example_move)}"
        )
        return observation, " ".join(map(str, self.answer))

    def _parse(self, move: str) -> tuple[tuple[int, ...] | None, str | None]:
        pegs, colours = self.setting.pegs, self.setting.colours
        tokens = [t for t in re.split(r"[\s,]+", move.strip()) if t]
        if len(tokens) == 1 and len(tokens[0]) == pegs:
            tokens = list(tokens[0])
        if len(tokens) != pegs or not all(t.isdecimal() for t in tokens):
            return None, f"{move!r} is not {pegs} colour numbers like [{self.example_move}]"
        code = tuple(int(t) for t in tokens)
        bad = [c for c in code if not 1 <= c <= colours]
        if bad:
            return None, f"colour {bad[0]} is not in 1-{colours}"
        return code, None

    def _play(self, guess: tuple[int, ...]) -> tuple[str, bool, bool]:
        black, white = score_code(guess, self.answer)
        self.history.append((guess, black, white))
        wanted = black * (self.setting.pegs + 1) + white
        codes, counts = all_codes(self.setting)
        among = self._candidates
        scores = _scores(np.array(guess, dtype=np.int8), codes[among], counts[among])
        self._candidates = self._candidates[scores == wanted]
        left = MAX_GUESSES - len(self.history)
        line = f"{' '.join(map(str, guess))} -> {black} black, {white} white."
        if black == self.setting.pegs:
            return f"{line} You cracked the code in {len(self.history)} guesses!", True, False
        if left == 0:
            return f"{line} No guesses left.", False, True
        return f"{line} {left} guess{'es' if left > 1 else ''} left.", False, False

    def _progress(self) -> float:
        return max((black for _, black, _ in self.history), default=0) / self.setting.pegs

    def _expert(self) -> str:
        codes, _ = all_codes(self.setting)
        if not self.history:
            index = _opener(self.setting)
        elif len(self._candidates) == 0:  # unreachable: the answer is always a candidate
            return f"[{' '.join(map(str, self.answer))}]"
        else:
            index = best_code(self.setting, self._candidates)
        return f"[{' '.join(str(int(c)) for c in codes[index])}]"

    def _reveal(self) -> str:
        return f"The code was {' '.join(map(str, self.answer))}."

    def _game_info(self) -> dict[str, Any]:
        return {"guesses_left": MAX_GUESSES - len(self.history)}
