"""TicTacToe: two players, a 3x3 board, cells numbered 1-9; the reference two-player game.

Rules told to the player: take turns placing your mark (X moves first) in an empty cell; three in a
row, column or diagonal wins; a full board is a draw. Move format: the cell number in brackets, `[5]`.
An unreadable or illegal move (taken cell, not 1-9) is a format error: the player is told why and
moves again; after `max_format_errors` of them in one game the player forfeits.
Rewards per seat at the end: 1 for a win, `draw_reward` for a draw, 0 for a loss.

Scripted players (`OPPONENTS`): "random" (a random empty cell), "heuristic" (win if it can, else
block, else centre, a corner, a side) and "optimal" (minimax; never loses). `expert_action` is the
optimal move.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from palaestra.envs.games.multiplayer import MoveOutcome, MultiAgentTextEnv
from palaestra.envs.games.parsing import MOVE_FORMAT, last_bracketed
from palaestra.envs.games.versus import Opponent

__all__ = ["OPPONENTS", "TicTacToe", "best_moves"]

LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))
MARKS = ("X", "O")
_LINES_THROUGH = tuple(tuple(line for line in LINES if cell in line) for cell in range(9))


def winner_of(board: str) -> str | None:
    """ "X" or "O" if that mark has a line, else None. `board` is 9 characters of "X", "O", "."."""
    for a, b, c in LINES:
        if board[a] != "." and board[a] == board[b] == board[c]:
            return board[a]
    return None


@functools.cache
def _render(board: str) -> str:
    """The board as three rows of marks, empty cells shown by their number (few boards: cached)."""
    c = [mark if mark != "." else str(i + 1) for i, mark in enumerate(board)]
    return f"{c[0]} | {c[1]} | {c[2]}\n{c[3]} | {c[4]} | {c[5]}\n{c[6]} | {c[7]} | {c[8]}"


@functools.cache
def _value(board: str, to_move: str) -> int:
    """Minimax value for `to_move`: +1 win, 0 draw, -1 loss with best play."""
    won = winner_of(board)
    if won is not None:
        return 1 if won == to_move else -1
    if "." not in board:
        return 0
    other = "O" if to_move == "X" else "X"
    return max(-_value(board[:i] + to_move + board[i + 1 :], other) for i, c in enumerate(board) if c == ".")


def best_moves(board: str, to_move: str) -> list[int]:
    """The cells (0-8) that keep the best minimax value for `to_move`."""
    return list(_best_cells(board, to_move))


@functools.cache
def _best_cells(board: str, to_move: str) -> tuple[int, ...]:
    other = "O" if to_move == "X" else "X"
    scored = [
        (-_value(board[:i] + to_move + board[i + 1 :], other), i) for i, c in enumerate(board) if c == "."
    ]
    best = max(score for score, _ in scored)
    return tuple(i for score, i in scored if score == best)


@functools.cache
def _empty_cells(board: str) -> tuple[str, ...]:
    return tuple(f"[{i + 1}]" for i, c in enumerate(board) if c == ".")


class TicTacToe(MultiAgentTextEnv):
    """TicTacToe for two seats; player_0 plays X and moves first.

    Args:
        draw_reward: each seat's reward for a draw.
        max_format_errors: unreadable or illegal moves a seat may make in one game before it forfeits.
    """

    def __init__(self, *, draw_reward: float = 0.5, max_format_errors: int = 3):
        super().__init__(num_players=2, max_turns=9 + 2 * max_format_errors)
        self.draw_reward, self.max_format_errors = float(draw_reward), max_format_errors
        self.board = "." * 9
        self.last_move: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        seats = self.possible_agents
        self._marks = dict(zip(seats, MARKS, strict=True))
        self._other = {seats[0]: seats[1], seats[1]: seats[0]}

    def mark(self, agent: str) -> str:
        return self._marks[agent]

    def system_prompt_for(self, agent: str) -> str:
        return (
            f"You are playing TicTacToe as {self.mark(agent)} against an opponent. Cells are numbered 1-9, "
            "left to right, top to bottom. Players take turns placing their mark in an empty cell; X moves "
            "first. Three of your marks in a row, column or diagonal win; a full board is a draw. "
            + MOVE_FORMAT.format(example="5")
        )

    def _reset(self, options: dict[str, Any] | None) -> str:
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; TicTacToe takes none")
        self.board = "." * 9
        self.last_move, self.errors = {}, dict.fromkeys(self.possible_agents, 0)
        return "tictactoe"

    def render_board(self) -> str:
        return _render(self.board)

    def _observe(self, agent: str) -> str:
        other = self._other[agent]
        played = self.last_move.get(other)
        head = "" if played is None else f"Your opponent ({self._marks[other]}) played {played + 1}.\n"
        if self.game_over:
            tail = "Game over: " + (
                "a draw." if self.winner is None else "you win." if self.winner == agent else "you lose."
            )
        else:
            tail = f"You are {self._marks[agent]}. Your move."
        return f"{head}Board:\n{_render(self.board)}\n{tail}"

    def progress(self, agent: str) -> float:
        """The minimax value of the position for `agent`, mapped to [0, 1] (0.5: a draw with best play)."""
        mark = self.mark(agent)
        to_move = self.mark(self.agent_selection)
        value = _value(self.board, mark) if to_move == mark else -_value(self.board, to_move)
        return (value + 1) / 2

    def legal_actions(self, agent: str) -> list[str]:
        return list(_empty_cells(self.board))

    def expert_action(self, agent: str) -> str:
        return f"[{_best_cells(self.board, self._marks[agent])[0] + 1}]"

    def _step(self, agent: str, action: str) -> MoveOutcome:
        move = last_bracketed(action)
        error = None
        if move is None or not move.isdecimal() or not 1 <= int(move) <= 9:
            error = "no move in [1-9] found in the reply"
        elif self.board[int(move) - 1] != ".":
            error = f"cell {move} is taken"
        if error is not None or move is None:
            self.errors[agent] += 1
            if self.errors[agent] > self.max_format_errors:
                winner = self._other[agent]
                return MoveOutcome(
                    rewards={winner: 1.0},
                    game_over=True,
                    winner=winner,
                    format_error=error,
                    feedback=f"Invalid move ({error}); too many invalid moves: you forfeit.",
                )
            return MoveOutcome(
                format_error=error, feedback=f"Invalid move: {error}. {MOVE_FORMAT.format(example='5')}"
            )
        cell = int(move) - 1
        mark = self._marks[agent]
        board = self.board = self.board[:cell] + mark + self.board[cell + 1 :]
        self.last_move[agent] = cell
        if any(board[a] == board[b] == board[c] for a, b, c in _LINES_THROUGH[cell]):  # lines of the move
            return MoveOutcome(rewards={agent: 1.0}, game_over=True, winner=agent)
        if "." not in self.board:
            return MoveOutcome(rewards=dict.fromkeys(self.possible_agents, self.draw_reward), game_over=True)
        return MoveOutcome()


def _random(game: TicTacToe, agent: str, rng: np.random.Generator) -> str:
    legal = game.legal_actions(agent)
    return legal[int(rng.integers(len(legal)))]


def _heuristic(game: TicTacToe, agent: str, rng: np.random.Generator) -> str:
    board, mark = game.board, game.mark(agent)
    other = "O" if mark == "X" else "X"
    empty = [i for i, c in enumerate(board) if c == "."]
    for who in (mark, other):  # win, else block
        for i in empty:
            if winner_of(board[:i] + who + board[i + 1 :]) == who:
                return f"[{i + 1}]"
    for group in ((4,), (0, 2, 6, 8), (1, 3, 5, 7)):
        options = [i for i in group if i in empty]
        if options:
            return f"[{options[int(rng.integers(len(options)))] + 1}]"
    raise AssertionError("no empty cell on a running game")


def _optimal(game: TicTacToe, agent: str, rng: np.random.Generator) -> str:
    moves = _best_cells(game.board, game.mark(agent))
    return f"[{moves[int(rng.integers(len(moves)))] + 1}]"


OPPONENTS: dict[str, Opponent[TicTacToe]] = {"random": _random, "heuristic": _heuristic, "optimal": _optimal}
