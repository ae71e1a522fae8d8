"""Wordle: guess a hidden five-letter word; each guess is scored letter by letter.

Rules told to the player: guesses must be five-letter words from the bundled list
(`data/words5.txt`, 1,700 English words); after each guess every letter is marked G (right letter,
right place), Y (in the word, elsewhere) or X (not in the word, or no more copies of it). Repeated
letters follow the official rule: greens are matched first, then yellows left to right while the
answer has unmatched copies of that letter: against "abbey", "babes" scores YYGGX and "bobby" scores
YXGXG (its third B finds no copy left). Move format: the word in brackets, `[crane]`.

Difficulty: easy: answers from the common words (`data/words5_common.txt`), 8 guesses; medium: common
answers, 6 guesses; hard: answers from every word, 6 guesses, and hard mode (every revealed hint must
be used: green letters stay in place, yellow letters appear in the next guesses).

Expert (`expert_action`): opens with `OPENER`, then plays a word consistent with all feedback so far
(so it also obeys hard mode), choosing among up to 50 of them the one that splits the remaining
candidates into the most feedback patterns. It solves about 99% of medium and hard games (see
tests/envs/games/test_puzzles.py). The env keeps the candidates as indices into the answer pool and
scores a guess against the whole pool at once with numpy (`PatternBook`, one cached row per word
guessed), so a step costs tens of microseconds where scoring word by word cost milliseconds.

Rewards and format errors follow `palaestra.envs.games.guess_number.PuzzleEnv`; the shaped-reward
progress phi is the fraction of the five positions whose letter has been shown green.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from palaestra.envs.games.parsing import MOVE_FORMAT
from palaestra.envs.games.puzzle import PuzzleEnv, pick_difficulty

__all__ = [
    "DIFFICULTIES",
    "OPENER",
    "PatternBook",
    "WordleEnv",
    "WordleSetting",
    "best_guess",
    "hard_mode_error",
    "load_words",
    "marks_code",
    "pattern_book",
    "score_guess",
]

WORD_LENGTH = 5
OPENER = "trace"
"""The expert's first guess: of the common words, the one that splits the answer pool most finely."""


@dataclass(frozen=True)
class WordleSetting:
    """A difficulty preset.

    Attributes:
        answers: the answer pool's file under `data/` (guesses may be any word of `words5.txt`).
        max_guesses: guesses allowed.
        hard_mode: revealed hints must be used in later guesses.
    """

    answers: str
    max_guesses: int
    hard_mode: bool


DIFFICULTIES: dict[str, WordleSetting] = {
    "easy": WordleSetting("words5_common.txt", 8, False),
    "medium": WordleSetting("words5_common.txt", 6, False),
    "hard": WordleSetting("words5.txt", 6, True),
}


@functools.cache
def load_words(name: str) -> tuple[str, ...]:
    """The words of the bundled list `palaestra/envs/games/data/<name>` (comment lines skipped)."""
    text = (resources.files("palaestra.envs.games") / "data" / name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def score_guess(guess: str, answer: str) -> str:
    """Wordle feedback for `guess` against `answer`: a string of G/Y/X, one per letter.

    Greens are matched first; each remaining letter of the guess, left to right, is Y while the answer
    still has an unmatched copy of it, else X.
    """
    marks = ["X"] * len(guess)
    unmatched: dict[str, int] = {}
    for i, (g, a) in enumerate(zip(guess, answer, strict=True)):
        if g == a:
            marks[i] = "G"
        else:
            unmatched[a] = unmatched.get(a, 0) + 1
    for i, g in enumerate(guess):
        if marks[i] != "G" and unmatched.get(g, 0) > 0:
            marks[i] = "Y"
            unmatched[g] -= 1
    return "".join(marks)


def hard_mode_error(guess: str, history: Sequence[tuple[str, str]]) -> str | None:
    """Why `guess` breaks hard mode given earlier (guess, feedback) pairs, or None."""
    for previous, marks in history:
        for i, (letter, mark) in enumerate(zip(previous, marks, strict=True)):
            if mark == "G" and guess[i] != letter:
                return f"hard mode: letter {i + 1} must be {letter!r}"
        for letter in sorted(set(previous)):
            shown = sum(1 for p, m in zip(previous, marks, strict=True) if p == letter and m != "X")
            if guess.count(letter) < shown:
                copies = f"{shown} copies of {letter!r}" if shown > 1 else repr(letter)
                return f"hard mode: the guess must contain {copies}"
    return None


def best_guess(candidates: Sequence[str], max_options: int = 50) -> str:
    """Of up to `max_options` evenly spread candidates, the one giving the most feedback patterns."""
    if len(candidates) <= 2:
        return candidates[0]
    options = candidates[:: -(-len(candidates) // max_options)]
    return max(options, key=lambda g: len({score_guess(g, a) for a in candidates}))


_MARK_CODES = {"X": 0, "Y": 1, "G": 2}


def marks_code(marks: str) -> int:
    """A G/Y/X feedback string as the integer `PatternBook` rows hold: sum of mark * 3**i, X=0 Y=1 G=2."""
    return sum(_MARK_CODES[m] * 3**i for i, m in enumerate(marks))


class PatternBook:
    """The feedback of any guess against every word of an answer pool, as `marks_code` integers.

    Args:
        answers: the answer pool (lower-case words of `WORD_LENGTH` ASCII letters).

    `row(guess)` is computed once per guess with numpy (the official repeated-letter rule, as
    `score_guess`) and kept: at most one row per word of the list, 1,713 x 1,713 bytes in all.
    """

    def __init__(self, answers: Sequence[str]):
        self.answers = tuple(answers)
        self._letters = np.frombuffer("".join(self.answers).encode("ascii"), dtype=np.uint8).reshape(
            len(self.answers), WORD_LENGTH
        )  # (N, 5)
        self._rows: dict[str, np.ndarray] = {}

    def row(self, guess: str) -> np.ndarray:
        """`marks_code(score_guess(guess, answer))` for every answer of the pool, as (N,) uint8."""
        row = self._rows.get(guess)
        if row is None:
            row = self._rows[guess] = self._score(guess)
        return row

    def _score(self, guess: str) -> np.ndarray:
        g = np.frombuffer(guess.encode("ascii"), dtype=np.uint8)
        green = self._letters == g  # (N, 5)
        free = ~green  # answer letters (and guess positions) not matched green
        codes = np.zeros(len(self.answers), dtype=np.uint8)
        for i in range(WORD_LENGTH):
            unmatched = ((self._letters == g[i]) & free).sum(axis=1)  # copies left for yellows
            same = [j for j in range(i + 1) if g[j] == g[i]]
            rank = free[:, same].sum(axis=1)  # this letter's non-green uses up to position i
            yellow = free[:, i] & (rank <= unmatched)
            codes += (2 * green[:, i] + yellow).astype(np.uint8) * np.uint8(3**i)
        return codes

    def best(self, candidates: np.ndarray, max_options: int = 50) -> str:
        """`best_guess` over the candidates given as indices into the pool (ascending), same choice."""
        if len(candidates) <= 2:
            return self.answers[candidates[0]]
        options = candidates[:: -(-len(candidates) // max_options)]
        splits = [np.count_nonzero(np.bincount(self.row(self.answers[o])[candidates])) for o in options]
        return self.answers[options[int(np.argmax(splits))]]


@functools.cache
def pattern_book(answers: str) -> PatternBook:
    """The shared `PatternBook` of the bundled answer list `data/<answers>`."""
    return PatternBook(load_words(answers))


class WordleEnv(PuzzleEnv):
    """Wordle against a hidden word drawn from the difficulty's answer pool (see the module docstring).

    Args:
        difficulty: "easy", "medium" or "hard" (see `DIFFICULTIES`).
        shaped: dense progress rewards.
        max_format_errors: invalid moves allowed per game; one more loses it.
        render_mode: None or "ansi".

    Reset options: `answer` (a word of the answer pool) fixes the hidden word.
    """

    game = "wordle"
    example_move = "crane"

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
            max_moves=self.setting.max_guesses,
            shaped=shaped,
            max_format_errors=max_format_errors,
            render_mode=render_mode,
        )
        self.max_guesses = self.setting.max_guesses
        self.words = frozenset(load_words("words5.txt"))
        self.answers = load_words(self.setting.answers)
        hard = (
            " Hard mode: every hint must be used; a green letter must stay in its place and a yellow "
            "letter must appear in each later guess."
            if self.setting.hard_mode
            else ""
        )
        self.system_prompt = (
            f"Play Wordle. Guess the hidden {WORD_LENGTH}-letter English word in {self.max_guesses} guesses. "
            f"Each guess must be a real {WORD_LENGTH}-letter word. After each guess every letter is marked: "
            "G = right letter in the right place, Y = the letter is in the word but elsewhere, X = the "
            "letter is not in the word (or not that many times)."
            + hard
            + " "
            + MOVE_FORMAT.format(example=self.example_move)
            + " Put only the word in the brackets."
        )
        self.answer = self.answers[0]
        self.history: list[tuple[str, str]] = []
        self._book = pattern_book(self.setting.answers)
        self._candidates = np.arange(len(self.answers))  # indices into the pool, ascending

    def _new_game(self, options: dict[str, Any]) -> tuple[str, str]:
        answer = options.pop("answer", None)
        if options:
            raise ValueError(
                f"unknown reset options {sorted(options)}; {type(self).__name__} accepts 'answer'"
            )
        if answer is None:
            answer = self.answers[int(self.np_random.integers(len(self.answers)))]
        if answer not in self.answers:
            raise ValueError(f"options['answer']={answer!r} is not in the {self.difficulty} answer pool")
        self.answer, self.history = answer, []
        self._candidates = np.arange(len(self.answers))
        observation = (
            f"Guess the hidden {WORD_LENGTH}-letter word. You have {self.max_guesses} guesses. "
            + MOVE_FORMAT.format(example=self.example_move)
        )
        return observation, answer

    def _parse(self, move: str) -> tuple[str | None, str | None]:
        word = move.strip().lower()
        if len(word) != WORD_LENGTH or not word.isalpha():
            return None, f"{move!r} is not a {WORD_LENGTH}-letter word"
        if word not in self.words:
            return None, f"{word!r} is not in the word list"
        if self.setting.hard_mode and (error := hard_mode_error(word, self.history)) is not None:
            return None, error
        return word, None

    def _play(self, guess: str) -> tuple[str, bool, bool]:
        marks = score_guess(guess, self.answer)
        self.history.append((guess, marks))
        self._candidates = self._candidates[self._book.row(guess)[self._candidates] == marks_code(marks)]
        left = self.max_guesses - len(self.history)
        line = f"{guess.upper()} -> {marks}."
        if guess == self.answer:
            return f"{line} Solved in {len(self.history)} guesses!", True, False
        if left == 0:
            return f"{line} No guesses left.", False, True
        return f"{line} {left} guess{'es' if left > 1 else ''} left.", False, False

    def _progress(self) -> float:
        known = {i for guess, marks in self.history for i, m in enumerate(marks) if m == "G"}
        return len(known) / WORD_LENGTH

    def _expert(self) -> str:
        if not self.history:
            return f"[{OPENER}]"
        if not len(self._candidates):  # cannot happen: the answer always fits its own feedback
            return f"[{self.answer}]"
        return f"[{self._book.best(self._candidates)}]"

    @property
    def candidates(self) -> list[str]:
        """The pool's words consistent with all feedback so far, in pool order."""
        return [self.answers[i] for i in self._candidates]

    def _reveal(self) -> str:
        return f"The word was {self.answer.upper()}."

    def _game_info(self) -> dict[str, Any]:
        return {"guesses_left": self.max_guesses - len(self.history)}
