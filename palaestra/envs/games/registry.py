"""Entry points that build the game envs from their registered kwargs (imported lazily by `make`)."""

from __future__ import annotations

from palaestra.envs.games.versus import VersusEnv

__all__ = ["DIFFICULTY_OPPONENT", "tictactoe"]

DIFFICULTY_OPPONENT = {"easy": "random", "medium": "heuristic", "hard": "optimal"}
"""Two-player games: a difficulty names the scripted opponent's strength."""


def _opponent(difficulty: str, opponent: str | None) -> str:
    if difficulty not in DIFFICULTY_OPPONENT:
        raise ValueError(f"difficulty={difficulty!r}; choose one of {tuple(DIFFICULTY_OPPONENT)}")
    return opponent or DIFFICULTY_OPPONENT[difficulty]


def tictactoe(
    *,
    difficulty: str = "medium",
    opponent: str | None = None,
    seat: str | int = "random",
    draw_reward: float = 0.5,
    max_format_errors: int = 3,
    shaped: bool = False,
    render_mode: str | None = None,
) -> VersusEnv:
    """TicTacToe against "random" (easy), "heuristic" (medium) or "optimal" (hard, minimax)."""
    from palaestra.envs.games.tictactoe import OPPONENTS, TicTacToe

    game = TicTacToe(draw_reward=draw_reward, max_format_errors=max_format_errors)
    return VersusEnv(
        shaped=shaped,
        game=game,
        opponents=OPPONENTS,
        opponent=_opponent(difficulty, opponent),
        seat=seat,
        render_mode=render_mode,
    )
