"""Connect Four: two players, a 6x7 board, columns numbered 1-7.

Rules told to the player: take turns dropping a disc into a column (X moves first); it falls to the
lowest empty cell. Four of your discs in a row, column or diagonal win; a full board is a draw. Move
format: the column in brackets, `[4]`. An unreadable move, a column outside 1-7 or a full column is a
format error: the player is told why and moves again; after `max_format_errors` of them in one game
the player forfeits. Rewards per seat at the end: 1 for a win, `draw_reward` for a draw, 0 for a loss.

Scripted players (`OPPONENTS`): "random" (a random open column), "heuristic" (win if it can, else
block, else avoid the cell under an opponent's threat, preferring central columns) and "optimal" (an
alpha-beta search `search_depth` plies deep). `expert_action` is the same search, `expert_depth` plies
deep. Searches are deterministic and cached per position, so the expert and the opponent share work.

The board is a pair of bitboards (Pascal Pons' layout): bit `7 * column + row`, row 0 at the bottom,
one spare bit on top of each column; `position` holds the stones of the player to move and `mask`
every stone.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from palaestra.envs.games.multiplayer import MoveOutcome, MultiAgentTextEnv
from palaestra.envs.games.parsing import MOVE_FORMAT, last_bracketed
from palaestra.envs.games.versus import Opponent, VersusEnv

__all__ = ["COLUMNS", "OPPONENTS", "ROWS", "ConnectFour", "best_columns", "make_env"]

ROWS, COLUMNS = 6, 7
MARKS = ("X", "O")
_H1 = ROWS + 1
_BOTTOM = sum(1 << (c * _H1) for c in range(COLUMNS))
_BOARD = _BOTTOM * ((1 << ROWS) - 1)
_CENTRE = ((1 << ROWS) - 1) << (3 * _H1)
_ORDER = (3, 2, 4, 1, 5, 0, 6)  # centre first: better pruning, better play
_WIN = 1000


def _column_bits(col: int) -> int:
    return ((1 << ROWS) - 1) << (col * _H1)


def has_four(stones: int) -> bool:
    """Whether `stones` (a bitboard) holds four in a row in any direction."""
    for shift in (1, _H1, ROWS, _H1 + 1):  # vertical, horizontal, both diagonals
        pairs = stones & (stones >> shift)
        if pairs & (pairs >> (2 * shift)):
            return True
    return False


def _threats(stones: int, mask: int) -> int:
    """Empty cells (playable now or later) that would complete four for `stones`."""
    found = (stones << 1) & (stones << 2) & (stones << 3)
    for shift in (_H1, ROWS, _H1 + 1):
        pair = (stones << shift) & (stones << 2 * shift)
        found |= pair & (stones << 3 * shift)
        found |= pair & (stones >> shift)
        pair = (stones >> shift) & (stones >> 2 * shift)
        found |= pair & (stones << shift)
        found |= pair & (stones >> 3 * shift)
    return found & (_BOARD ^ mask)


def _negamax(
    position: int, mask: int, depth: int, alpha: int, beta: int, table: dict[int, tuple[int, int]]
) -> int:
    """Alpha-beta value for the player to move (wins score `_WIN - stones`: sooner is better).

    At depth 0 the static score counts threat cells (empty cells that would complete four) and central
    discs, both sides. `table` holds (lower, upper) bounds per position for one root search (a
    position's remaining depth is the same wherever it occurs there).
    """
    stones = mask.bit_count()
    if stones == ROWS * COLUMNS:
        return 0
    possible = (mask + _BOTTOM) & _BOARD
    mine = _threats(position, mask)
    if mine & possible:
        return _WIN - stones - 1
    other = position ^ mask
    theirs = _threats(other, mask)
    if depth == 0:
        centre = (position & _CENTRE).bit_count() - (other & _CENTRE).bit_count()
        return 4 * (mine.bit_count() - theirs.bit_count()) + centre
    forced = possible & theirs
    if forced:
        if forced & (forced - 1):  # two immediate threats: lost
            return -(_WIN - stones - 2)
        possible = forced
    possible &= ~(theirs >> 1)  # never play right under an opponent's threat
    if not possible:
        return -(_WIN - stones - 2)
    key = position + mask
    low, high = table.get(key, (-2 * _WIN, 2 * _WIN))
    if low >= beta:
        return low
    if high <= alpha:
        return high
    alpha, beta = max(alpha, low), min(beta, high)
    best = -2 * _WIN
    for col in _ORDER:
        move = possible & _column_bits(col)
        if not move:
            continue
        score = -_negamax(other, mask | move, depth - 1, -beta, -max(alpha, best), table)
        if score > best:
            best = score
            if best >= beta:
                break
    if best <= alpha:
        table[key] = (low, best)
    elif best >= beta:
        table[key] = (best, high)
    else:
        table[key] = (best, best)
    return best


@functools.lru_cache(maxsize=8192)
def _root_scores(position: int, mask: int, depth: int) -> tuple[tuple[int, int], ...]:
    """(column, score) for every open column; exact for the best ones, an upper bound for the rest."""
    scores: list[tuple[int, int]] = []
    best = -_WIN * 2
    table: dict[int, tuple[int, int]] = {}
    for col in _ORDER:
        if mask & (1 << (ROWS - 1 + col * _H1)):
            continue
        move = (mask + (1 << (col * _H1))) & _column_bits(col)
        if has_four(position | move):
            score = _WIN - mask.bit_count() - 1
        else:
            score = -_negamax(position ^ mask, mask | move, depth - 1, -_WIN * 2, -(best - 1), table)
        best = max(best, score)
        scores.append((col, score))
    return tuple(scores)


def best_columns(position: int, mask: int, depth: int) -> list[int]:
    """The open columns (0-6) with the best `depth`-ply alpha-beta score, centre first."""
    scores = _root_scores(position, mask, depth)
    top = max(score for _, score in scores)
    return [col for col, score in scores if score == top]


class ConnectFour(MultiAgentTextEnv):
    """Connect Four for two seats; player_0 plays X and moves first.

    Args:
        draw_reward: each seat's reward for a draw.
        max_format_errors: unreadable or illegal moves a seat may make in one game before it forfeits.
        search_depth: plies the "optimal" scripted player searches.
        expert_depth: plies `expert_action` searches.
    """

    def __init__(
        self,
        *,
        draw_reward: float = 0.5,
        max_format_errors: int = 3,
        search_depth: int = 6,
        expert_depth: int = 6,
    ):
        if search_depth < 1 or expert_depth < 1:
            raise ValueError(f"search_depth={search_depth}, expert_depth={expert_depth}; both must be >= 1")
        super().__init__(num_players=2, max_turns=ROWS * COLUMNS + 2 * max_format_errors)
        self.draw_reward, self.max_format_errors = float(draw_reward), max_format_errors
        self.search_depth, self.expert_depth = search_depth, expert_depth
        self.position, self.mask = 0, 0
        self.last_move: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def mark(self, agent: str) -> str:
        return MARKS[self.possible_agents.index(agent)]

    def stones(self, agent: str) -> int:
        """`agent`'s discs as a bitboard."""
        to_move = self.mask.bit_count() % 2 == self.possible_agents.index(agent)
        return self.position if to_move else self.position ^ self.mask

    def open_columns(self) -> list[int]:
        return [c for c in range(COLUMNS) if not self.mask & (1 << (ROWS - 1 + c * _H1))]

    def system_prompt_for(self, agent: str) -> str:
        return (
            f"You are playing Connect Four as {self.mark(agent)} against an opponent. The board has 6 rows "
            "and 7 columns, numbered 1-7 from left to right. Players take turns dropping a disc into a "
            "column that is not full; X moves first. The disc falls to the lowest empty cell. Four of your "
            "discs in a row, column or diagonal win; a full board is a draw. "
            + MOVE_FORMAT.format(example="4")
        )

    def _reset(self, options: dict[str, Any] | None) -> str:
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; ConnectFour takes none")
        self.position, self.mask = 0, 0
        self.last_move, self.errors = {}, dict.fromkeys(self.possible_agents, 0)
        return "connect_four"

    def cell(self, row: int, col: int) -> str:
        """ "X", "O" or "." at `row` (0 = bottom) and `col` (0 = left)."""
        bit = 1 << (col * _H1 + row)
        if not self.mask & bit:
            return "."
        return MARKS[0] if self.stones(self.possible_agents[0]) & bit else MARKS[1]

    def render_board(self) -> str:
        rows = [" ".join(self.cell(r, c) for c in range(COLUMNS)) for r in reversed(range(ROWS))]
        return "\n".join([*rows, " ".join(str(c + 1) for c in range(COLUMNS))])

    def _observe(self, agent: str) -> str:
        other = self.possible_agents[1 - self.possible_agents.index(agent)]
        lines = []
        if other in self.last_move:
            lines.append(f"Your opponent ({self.mark(other)}) played column {self.last_move[other] + 1}.")
        lines.append(f"Board (bottom row last, column numbers below):\n{self.render_board()}")
        if self.game_over:
            lines.append(
                "Game over: "
                + ("a draw." if self.winner is None else "you win." if self.winner == agent else "you lose.")
            )
        else:
            lines.append(f"You are {self.mark(agent)}. Your move.")
        return "\n".join(lines)

    def progress(self, agent: str) -> float:
        """`agent`'s share of the cells that would complete four (own threats / all threats; 0.5 if none)."""
        mask = self.stones(self.possible_agents[0]) | self.stones(self.possible_agents[1])
        mine = bin(_threats(self.stones(agent), mask)).count("1")
        other = self.possible_agents[1 - self.possible_agents.index(agent)]
        theirs = bin(_threats(self.stones(other), mask)).count("1")
        return 0.5 if mine + theirs == 0 else mine / (mine + theirs)

    def legal_actions(self, agent: str) -> list[str]:
        return [f"[{c + 1}]" for c in self.open_columns()]

    def expert_action(self, agent: str) -> str:
        return f"[{best_columns(self.position, self.mask, self.expert_depth)[0] + 1}]"

    def _invalid(self, agent: str, error: str) -> MoveOutcome:
        """An unreadable or illegal move: a format error, or a forfeit after too many of them."""
        self.errors[agent] += 1
        if self.errors[agent] <= self.max_format_errors:
            return MoveOutcome(
                format_error=error, feedback=f"Invalid move: {error}. {MOVE_FORMAT.format(example='4')}"
            )
        winner = self.possible_agents[1 - self.possible_agents.index(agent)]
        return MoveOutcome(
            rewards={winner: 1.0},
            game_over=True,
            winner=winner,
            format_error=error,
            feedback=f"Invalid move ({error}); too many invalid moves: you forfeit.",
        )

    def _step(self, agent: str, action: str) -> MoveOutcome:
        move = last_bracketed(action)
        if move is None or not move.isdecimal() or not 1 <= int(move) <= COLUMNS:
            return self._invalid(agent, "no column in [1-7] found in the reply")
        col = int(move) - 1
        if col not in self.open_columns():
            return self._invalid(agent, f"column {move} is full")
        placed = (self.mask + (1 << (col * _H1))) & _column_bits(col)
        mine = self.position | placed
        self.position, self.mask = self.position ^ self.mask, self.mask | placed
        self.last_move[agent] = col
        if has_four(mine):
            return MoveOutcome(rewards={agent: 1.0}, game_over=True, winner=agent)
        if self.mask.bit_count() == ROWS * COLUMNS:
            return MoveOutcome(rewards=dict.fromkeys(self.possible_agents, self.draw_reward), game_over=True)
        return MoveOutcome()


def _random(game: ConnectFour, agent: str, rng: np.random.Generator) -> str:
    legal = game.legal_actions(agent)
    return legal[int(rng.integers(len(legal)))]


def _heuristic(game: ConnectFour, agent: str, rng: np.random.Generator) -> str:
    """Win, else block, else a central column that does not hand the opponent a win."""
    position, mask = game.position, game.mask
    possible = (mask + _BOTTOM) & _BOARD
    opponent_wins = _threats(position ^ mask, mask)
    columns = game.open_columns()
    for target in (_threats(position, mask) & possible, opponent_wins & possible):
        hits = [c for c in columns if target & _column_bits(c)]
        if hits:
            return f"[{hits[0] + 1}]"
    safe = [c for c in columns if not possible & _column_bits(c) & (opponent_wins >> 1)] or columns
    weights = np.array([4.0 - abs(c - 3) for c in safe]) ** 2
    return f"[{safe[int(rng.choice(len(safe), p=weights / weights.sum()))] + 1}]"


def _optimal(game: ConnectFour, agent: str, rng: np.random.Generator) -> str:
    columns = best_columns(game.position, game.mask, game.search_depth)
    return f"[{columns[int(rng.integers(len(columns)))] + 1}]"


OPPONENTS: dict[str, Opponent[ConnectFour]] = {
    "random": _random,
    "heuristic": _heuristic,
    "optimal": _optimal,
}

SEARCH_DEPTH = {"easy": 2, "medium": 4, "hard": 5}
"""Plies the "optimal" opponent searches at each difficulty (used when it is picked explicitly too)."""


def make_env(
    *,
    difficulty: str = "medium",
    opponent: str | None = None,
    seat: str | int = "random",
    draw_reward: float = 0.5,
    max_format_errors: int = 3,
    search_depth: int | None = None,
    expert_depth: int = 6,
    shaped: bool = False,
    render_mode: str | None = None,
) -> VersusEnv:
    """Connect Four against "random" (easy), "heuristic" (medium) or "optimal" (hard, alpha-beta).

    `search_depth` defaults to `SEARCH_DEPTH[difficulty]`.
    """
    from palaestra.envs.games.registry import _opponent

    name = _opponent(difficulty, opponent)
    game = ConnectFour(
        draw_reward=draw_reward,
        max_format_errors=max_format_errors,
        search_depth=search_depth if search_depth is not None else SEARCH_DEPTH[difficulty],
        expert_depth=expert_depth,
    )
    return VersusEnv(
        shaped=shaped, game=game, opponents=OPPONENTS, opponent=name, seat=seat, render_mode=render_mode
    )
