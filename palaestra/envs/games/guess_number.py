"""GuessTheNumber: find a hidden integer from "higher"/"lower" hints; also `PuzzleEnv`, the base of the
single-player guessing puzzles (Wordle, Hangman, Mastermind, GuessTheNumber).

Rules told to the player: a whole number is hidden in [1, high]; after each guess the env says whether
the number is higher or lower; `max_guesses` guesses. Move format: the number in brackets, `[50]`.

Difficulty (high, max_guesses): easy (20, 5), medium (100, 7), hard (1000, 10); binary search always
finishes within these limits. `expert_action` is the binary-search guess (the middle of the interval
still possible); `legal_actions` lists every number in range when there are at most 200.

`PuzzleEnv` rules shared by every puzzle:
    * The move is the content of the last `[...]` of the reply (`palaestra.envs.games.parsing`).
    * An invalid move (no brackets, wrong form, a word not in the list, a repeated letter...) is a
      format error: the player is told why, it uses no guess, but it counts as a turn; after
      `max_format_errors` of them the next one loses the game.
    * Rewards, `shaped=False`: 1.0 on the step that solves the puzzle, else 0.0.
    * Rewards, `shaped=True`: each game defines a progress measure phi in [0, 1] that never decreases
      during an episode (phi = 1 once solved); a valid move earns `PROGRESS_WEIGHT * (phi_new - phi_old)`
      and solving earns `1 - PROGRESS_WEIGHT` on top. The episode return is therefore
      `PROGRESS_WEIGHT * phi_final + (1 - PROGRESS_WEIGHT) * solved`: 1.0 when solved, below
      `PROGRESS_WEIGHT` (0.5) otherwise, so it stays in [0, 1]. GuessTheNumber's phi is
      `1 - log(size of the interval still possible) / log(high)`.

Info keys besides the standard ones: `expert_action`, `legal_actions` (where few), `guesses_left`,
`format_errors`, `role` ("user").
"""

from __future__ import annotations

import functools
import math
from typing import Any

from palaestra.envs.games.parsing import MOVE_FORMAT
from palaestra.envs.games.puzzle import LEGAL_ACTIONS_LIMIT, PuzzleEnv, pick_difficulty

__all__ = ["DIFFICULTIES", "GuessTheNumberEnv"]

DIFFICULTIES: dict[str, tuple[int, int]] = {"easy": (20, 5), "medium": (100, 7), "hard": (1000, 10)}
"""GuessTheNumber presets: difficulty -> (high, max_guesses); the number lies in [1, high]."""


@functools.cache
def _all_guesses(high: int) -> list[str]:
    """Every guess in [1, high] as a reply (built once per range; shared, never mutated)."""
    return [f"[{n}]" for n in range(1, high + 1)]


class GuessTheNumberEnv(PuzzleEnv):
    """Guess a hidden integer in [1, high] with "higher"/"lower" hints (see the module docstring).

    Args:
        difficulty: "easy", "medium" or "hard" (see `DIFFICULTIES`).
        shaped: dense progress rewards.
        max_format_errors: invalid moves allowed per game; one more loses it.
        render_mode: None or "ansi".

    Reset options: `answer` (int) fixes the hidden number.
    """

    game = "guess-number"
    example_move = "50"

    def __init__(
        self,
        *,
        difficulty: str = "medium",
        shaped: bool = False,
        max_format_errors: int = 3,
        render_mode: str | None = None,
    ):
        self.high, self.max_guesses = pick_difficulty(DIFFICULTIES, difficulty)
        super().__init__(
            difficulty=difficulty,
            max_moves=self.max_guesses,
            shaped=shaped,
            max_format_errors=max_format_errors,
            render_mode=render_mode,
        )
        self.system_prompt = (
            f"Guess the number. A whole number between 1 and {self.high} (inclusive) is hidden. After each "
            "guess you are told whether the hidden number is higher or lower than your guess. You have "
            f"{self.max_guesses} guesses. {MOVE_FORMAT.format(example=self.example_move)} Put only the "
            "number in the brackets."
        )
        self.answer, self.low_bound, self.high_bound, self.guesses = 1, 1, self.high, 0
        self._legal_actions = _all_guesses(self.high) if self.high <= LEGAL_ACTIONS_LIMIT else None

    def _new_game(self, options: dict[str, Any]) -> tuple[str, str]:
        answer = options.pop("answer", None)
        if options:
            raise ValueError(
                f"unknown reset options {sorted(options)}; {type(self).__name__} accepts 'answer'"
            )
        if answer is None:
            answer = int(self.np_random.integers(1, self.high + 1))
        if isinstance(answer, bool) or not isinstance(answer, int) or not 1 <= answer <= self.high:
            raise ValueError(f"options['answer']={answer!r}; expected an integer in [1, {self.high}]")
        self.answer, self.low_bound, self.high_bound, self.guesses = answer, 1, self.high, 0
        observation = (
            f"I am thinking of a whole number between 1 and {self.high}. You have {self.max_guesses} "
            f"guesses. Your first guess? {MOVE_FORMAT.format(example=self.example_move)}"
        )
        return observation, str(answer)

    def _parse(self, move: str) -> tuple[int | None, str | None]:
        text = move.replace(",", "").strip()
        if not text.lstrip("+-").isdecimal():
            return None, f"{move!r} is not a whole number"
        number = int(text)
        if not 1 <= number <= self.high:
            return None, f"{number} is outside 1-{self.high}"
        return number, None

    def _play(self, guess: int) -> tuple[str, bool, bool]:
        self.guesses += 1
        left = self.max_guesses - self.guesses
        if guess == self.answer:
            return f"Correct! The number is {guess}. Solved in {self.guesses} guesses.", True, False
        if guess < self.answer:
            self.low_bound = max(self.low_bound, guess + 1)
            hint = f"The number is higher than {guess}."
        else:
            self.high_bound = min(self.high_bound, guess - 1)
            hint = f"The number is lower than {guess}."
        if left == 0:
            return f"{hint} No guesses left.", False, True
        return f"{hint} {left} guess{'es' if left > 1 else ''} left.", False, False

    def _progress(self) -> float:
        size = max(1, self.high_bound - self.low_bound + 1)
        return 1.0 - math.log(size) / math.log(self.high)

    def _expert(self) -> str:
        return f"[{(self.low_bound + self.high_bound) // 2}]"

    def _reveal(self) -> str:
        return f"The number was {self.answer}."

    def _legal(self) -> list[str] | None:
        return self._legal_actions

    def _game_info(self) -> dict[str, Any]:
        return {"guesses_left": self.max_guesses - self.guesses}
