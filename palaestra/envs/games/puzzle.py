"""`PuzzleEnv`: what the word and number puzzles share (Wordle, Hangman, Mastermind, Guess-the-number):
a budget of format errors, shaped rewards from a progress score, and the info keys."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.parsing import MOVE_FORMAT, last_bracketed

__all__ = ["LEGAL_ACTIONS_LIMIT", "PROGRESS_WEIGHT", "PuzzleEnv", "pick_difficulty"]

PROGRESS_WEIGHT = 0.5
"""Shaped rewards: the share of the episode return paid for progress; the rest is paid on success."""
LEGAL_ACTIONS_LIMIT = 200
"""`info["legal_actions"]` is given when a position has at most this many legal moves."""

_T = TypeVar("_T")


def pick_difficulty(settings: Mapping[str, _T], difficulty: str) -> _T:
    """`settings[difficulty]`, or a ValueError naming the choices."""
    if difficulty not in settings:
        raise ValueError(f"difficulty={difficulty!r}; choose one of {tuple(settings)}")
    return settings[difficulty]


class PuzzleEnv(TextEnv):
    """Base of the single-player guessing puzzles: format-error budget, shaped rewards, info keys.

    Subclasses set `game` and `example_move`, build `system_prompt`, and implement the hooks
    `_new_game`, `_parse`, `_play`, `_progress`, `_expert` and `_reveal` (and `_legal` where the legal
    moves are few). See the module docstring for the shared rules.

    Args:
        difficulty: the preset name (validated by the subclass).
        max_moves: the most valid moves one game can take.
        shaped: dense progress rewards (see the module docstring).
        max_format_errors: invalid moves allowed per game; one more loses it.
        render_mode: None or "ansi".
    """

    game: ClassVar[str] = "puzzle"
    example_move: str = "move"

    def __init__(
        self,
        *,
        difficulty: str,
        max_moves: int,
        shaped: bool,
        max_format_errors: int,
        render_mode: str | None,
    ):
        if not isinstance(shaped, bool):
            raise ValueError(f"shaped={shaped!r}; expected True or False")
        if (
            isinstance(max_format_errors, bool)
            or not isinstance(max_format_errors, int)
            or max_format_errors < 0
        ):
            raise ValueError(f"max_format_errors={max_format_errors!r}; expected an integer >= 0")
        super().__init__(max_turns=max_moves + max_format_errors + 1, render_mode=render_mode)
        self.difficulty, self.shaped, self.max_format_errors = difficulty, shaped, max_format_errors
        self._format_errors = 0
        self._phi = 0.0

    # -- hooks -------------------------------------------------------------------------------------
    def _new_game(self, options: dict[str, Any]) -> tuple[str, str]:
        """Draw a game with `self.np_random` (or take `options["answer"]`); (observation, secret)."""
        raise NotImplementedError

    def _parse(self, move: str) -> tuple[Any, str | None]:
        """(the guess, None) or (None, why `move` is invalid)."""
        raise NotImplementedError

    def _play(self, guess: Any) -> tuple[str, bool, bool]:
        """Apply a valid guess: (feedback, solved, lost)."""
        raise NotImplementedError

    def _progress(self) -> float:
        """phi in [0, 1] for shaped rewards (see the module docstring)."""
        raise NotImplementedError

    def _expert(self) -> str:
        """The reply a strong player gives now, e.g. "[crane]"."""
        raise NotImplementedError

    def _reveal(self) -> str:
        """The sentence that tells a losing player the answer."""
        raise NotImplementedError

    def _legal(self) -> list[str] | None:
        """Every legal reply when there are at most `LEGAL_ACTIONS_LIMIT`, else None."""
        return None

    def _game_info(self) -> dict[str, Any]:
        """Extra info keys of the game, in a new dict (the standard puzzle keys are added to it)."""
        return {}

    # -- TextEnv hooks -----------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        self._format_errors, self._phi = 0, 0.0
        observation, secret = self._new_game(dict(options or {}))
        digest = hashlib.blake2s(secret.encode(), digest_size=5).hexdigest()
        return observation, {"task_id": f"{self.game}-{self.difficulty}-{digest}", **self._info()}

    def _info(self) -> dict[str, Any]:
        info = self._game_info()
        info["expert_action"] = self._expert()
        info["format_errors"] = self._format_errors
        info["role"] = "user"
        legal = self._legal()
        if legal is not None:
            info["legal_actions"] = legal
        return info

    def _step(self, action: str) -> StepOutcome:
        move = last_bracketed(action)
        guess, error = (None, "no move in square brackets found") if move is None else self._parse(move)
        if error is not None:
            return self._invalid(error)
        feedback, solved, lost = self._play(guess)
        if self.shaped:
            phi = 1.0 if solved else max(self._phi, min(1.0, self._progress()))
            reward = PROGRESS_WEIGHT * (phi - self._phi) + (1.0 - PROGRESS_WEIGHT) * solved
            self._phi = phi
        else:
            reward = float(solved)
        if lost and not solved:
            feedback += f" {self._reveal()}"
        # positional (observation, reward, terminated, success, format_error, info): the hot path of
        # every puzzle step, and keywords cost a dataclass __init__ twice the time
        return StepOutcome(feedback, reward, solved or lost, solved, None, self._info())

    def _invalid(self, error: str) -> StepOutcome:
        self._format_errors += 1
        left = self.max_format_errors - self._format_errors
        observation = f"Invalid move: {error}. "
        if left < 0:
            observation += f"Too many invalid moves: you lose. {self._reveal()}"
        else:
            allowed = (
                f"{left} more invalid move{'s' if left > 1 else ''} allowed" if left else "no more allowed"
            )
            observation += f"{MOVE_FORMAT.format(example=self.example_move)} This used no guess ({allowed})."
        return StepOutcome(observation, terminated=left < 0, format_error=error, info=self._info())
