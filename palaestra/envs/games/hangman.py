"""Hangman: reveal a hidden word by guessing its letters before the wrong guesses run out.

Rules told to the player: the word is shown as blanks; guess one letter at a time (every copy of a
letter in the word is revealed) or the whole word; each wrong letter or wrong word costs a life, and
the game is lost when the lives run out. Move format: a letter `[e]` or the whole word `[apple]` in
brackets. Guessing a letter (or word) twice is an invalid move.

Difficulty (word lengths, lives): easy 8-10 letters and 8 lives; medium 5-7 letters and 6 lives; hard
4-5 letters and 6 lives (short words leave fewer letters to hit and have many look-alikes). Words come
from the bundled lists `data/words5_common.txt` and `data/words.txt` (2,600 words).

Expert (`expert_action`): among the words of the lists that fit the pattern and the misses, guess the
whole word when one is left, else the unguessed letter found in most of them. It wins every easy game,
about 99% of medium games and 88% of hard ones (many short words differ in one letter: _IGHT fits
eight words). `legal_actions` lists the unguessed letters.

Rewards and format errors follow `palaestra.envs.games.guess_number.PuzzleEnv`; the shaped-reward
progress phi is the fraction of the word's distinct letters revealed.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass
from typing import Any

from palaestra.envs.games.parsing import MOVE_FORMAT
from palaestra.envs.games.puzzle import PuzzleEnv, pick_difficulty
from palaestra.envs.games.wordle import load_words

__all__ = ["DIFFICULTIES", "HangmanEnv", "HangmanSetting", "hangman_words"]


@dataclass(frozen=True)
class HangmanSetting:
    """A difficulty preset: words of `min_length`..`max_length` letters, `lives` wrong guesses."""

    min_length: int
    max_length: int
    lives: int


DIFFICULTIES: dict[str, HangmanSetting] = {
    "easy": HangmanSetting(8, 10, 8),
    "medium": HangmanSetting(5, 7, 6),
    "hard": HangmanSetting(4, 5, 6),
}


@functools.cache
def hangman_words(min_length: int, max_length: int) -> tuple[str, ...]:
    """The bundled words of `min_length`..`max_length` letters, sorted by length then alphabetically."""
    words = set(load_words("words5_common.txt")) | set(load_words("words.txt"))
    return tuple(sorted((w for w in words if min_length <= len(w) <= max_length), key=lambda w: (len(w), w)))


def _positions(word: str, letter: str) -> tuple[int, ...]:
    return tuple(i for i, c in enumerate(word) if c == letter)


class HangmanEnv(PuzzleEnv):
    """Hangman on a word drawn from the difficulty's pool (see the module docstring).

    Args:
        difficulty: "easy", "medium" or "hard" (see `DIFFICULTIES`).
        shaped: dense progress rewards.
        max_format_errors: invalid moves allowed per game; one more loses it.
        render_mode: None or "ansi".

    Reset options: `answer` (a word of the difficulty's pool) fixes the hidden word.
    """

    game = "hangman"
    example_move = "e"

    def __init__(
        self,
        *,
        difficulty: str = "medium",
        shaped: bool = False,
        max_format_errors: int = 3,
        render_mode: str | None = None,
    ):
        self.setting = pick_difficulty(DIFFICULTIES, difficulty)
        self.lives = self.setting.lives
        # a game ends by the last wrong guess or the last new letter: lives - 1 + (distinct letters)
        super().__init__(
            difficulty=difficulty,
            max_moves=self.lives - 1 + self.setting.max_length,
            shaped=shaped,
            max_format_errors=max_format_errors,
            render_mode=render_mode,
        )
        self.words = hangman_words(self.setting.min_length, self.setting.max_length)
        self.system_prompt = (
            f"Play Hangman. A hidden English word is shown as blanks, one per letter. Guess one letter at a "
            "time: every copy of a right letter is revealed. You may also guess the whole word. Each wrong "
            f"letter or wrong word costs a life; you have {self.lives} lives. Reveal the whole word to win. "
            f"{MOVE_FORMAT.format(example=self.example_move)} Put one letter, or the whole word, in the "
            "brackets, e.g. [e] or [apple]; do not repeat a guess."
        )
        self.answer = self.words[0]
        self.guessed: list[str] = []
        self.wrong_words: list[str] = []
        self.misses = 0
        self._candidates: list[str] = []

    def pattern(self) -> str:
        """The word as the player sees it, e.g. "_ p p _ e"."""
        return " ".join(c if c in self.guessed else "_" for c in self.answer)

    def _status(self) -> str:
        guessed = ", ".join(sorted(self.guessed + self.wrong_words)) or "none"
        lives = self.lives - self.misses
        return f"Word: {self.pattern()} ({len(self.answer)} letters). Lives: {lives}. Guessed: {guessed}."

    def _new_game(self, options: dict[str, Any]) -> tuple[str, str]:
        answer = options.pop("answer", None)
        if options:
            raise ValueError(
                f"unknown reset options {sorted(options)}; {type(self).__name__} accepts 'answer'"
            )
        if answer is None:
            answer = self.words[int(self.np_random.integers(len(self.words)))]
        if answer not in self.words:
            raise ValueError(f"options['answer']={answer!r} is not in the {self.difficulty} word pool")
        self.answer, self.guessed, self.wrong_words, self.misses = answer, [], [], 0
        self._candidates = [w for w in self.words if len(w) == len(answer)]
        return f"{self._status()} {MOVE_FORMAT.format(example=self.example_move)}", answer

    def _parse(self, move: str) -> tuple[str | None, str | None]:
        guess = move.strip().lower()
        if not (guess.isascii() and guess.isalpha()) or len(guess) not in (1, len(self.answer)):
            return None, f"{move!r} is neither one letter nor a {len(self.answer)}-letter word"
        if guess in self.guessed or guess in self.wrong_words:
            return None, f"you already guessed {guess!r}"
        return guess, None

    def _play(self, guess: str) -> tuple[str, bool, bool]:
        if len(guess) == 1:
            self.guessed.append(guess)
            where = _positions(self.answer, guess)
            self._candidates = [w for w in self._candidates if _positions(w, guess) == where]
            hit = guess in self.answer
            solved = all(c in self.guessed for c in self.answer)
            verdict = f"Yes, {guess!r} is in the word." if hit else f"No {guess!r} in the word."
        else:
            hit = solved = guess == self.answer
            verdict = "" if hit else f"{guess!r} is not the word."
            if not hit:
                self.wrong_words.append(guess)
                self._candidates = [w for w in self._candidates if w != guess]
        if solved:
            self.guessed = sorted(set(self.guessed) | set(self.answer))
            return f"You found the word: {self.answer.upper()}!", True, False
        if not hit:
            self.misses += 1
        lost = self.misses >= self.lives
        return f"{verdict} {self._status()}" + (" No lives left." if lost else ""), False, lost

    def candidates(self) -> list[str]:
        """The pool words that fit the revealed pattern, the missed letters and the wrong words."""
        return list(self._candidates)

    def _progress(self) -> float:
        letters = set(self.answer)
        return len(letters & set(self.guessed)) / len(letters)

    def _expert(self) -> str:
        candidates = self._candidates or [self.answer]
        if len(candidates) == 1:
            return f"[{candidates[0]}]"
        counts = {c: sum(c in w for w in candidates) for c in self._unguessed()}
        return f"[{max(counts, key=lambda c: counts[c])}]"

    def _unguessed(self) -> list[str]:
        return [c for c in string.ascii_lowercase if c not in self.guessed]

    def _legal(self) -> list[str]:
        return [f"[{c}]" for c in self._unguessed()]

    def _reveal(self) -> str:
        return f"The word was {self.answer.upper()}."

    def _game_info(self) -> dict[str, Any]:
        return {"lives_left": self.lives - self.misses, "pattern": self.pattern()}
