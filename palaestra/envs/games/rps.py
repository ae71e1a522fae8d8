"""Rock-Paper-Scissors, repeated: two players, `rounds` rounds, the better score wins.

Rules told to the player: each round both players pick rock, paper or scissors; rock beats scissors,
scissors beats paper, paper beats rock; equal moves draw the round. Move format: `[rock]`, `[paper]`
or `[scissors]` (case-insensitive). Anything else is a format error: the player is told why and moves
again; after `max_format_errors` of them in one game the player forfeits (reward 0, the other 1).

Simultaneous moves in a turn-based protocol: in each round player_0 moves, then player_1, but a
seat's view only shows completed rounds, so neither sees the other's move of the current round until
both have moved. Against a scripted opponent the opponent's move is therefore fixed before the
learner's (when the opponent sits first) or chosen without looking at it (when it sits second; the
scripted players read only completed rounds through `RockPaperScissors.history`).

Rewards per seat at the end: with x = (round wins - round losses) / rounds in [-1, 1], the reward is
(x + 1) / 2 in [0, 1]. The winner (success) is the seat with more round wins; equal counts are a draw.

Scripted players (`OPPONENTS`): "biased" (easy: plays a favourite move, drawn per seat at reset, with
probability `bias`, else uniformly), "pattern" (medium: plays what would have beaten the other's
last move), "random" (hard: uniform, unexploitable). `expert_action` predicts the other seat's move
with the hypothesis that has predicted the completed rounds best (move frequency, or a fixed shift
of either player's last move) and plays what beats the prediction.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from palaestra.envs.games.multiplayer import MoveOutcome, MultiAgentTextEnv
from palaestra.envs.games.parsing import MOVE_FORMAT, last_bracketed
from palaestra.envs.games.versus import Opponent, VersusEnv

__all__ = ["DIFFICULTY_OPPONENT", "MOVES", "OPPONENTS", "RockPaperScissors", "expert_move", "make_env"]

MOVES = ("rock", "paper", "scissors")
"""Index i is beaten by index (i + 1) % 3."""


def beats(move: str) -> str:
    """The move that beats `move`."""
    return MOVES[(MOVES.index(move) + 1) % 3]


def round_result(mine: str, theirs: str) -> int:
    """+1 if `mine` wins the round, -1 if it loses, 0 for a draw."""
    diff = (MOVES.index(mine) - MOVES.index(theirs)) % 3
    return {0: 0, 1: 1, 2: -1}[diff]


def _shift(move: str, k: int) -> str:
    return MOVES[(MOVES.index(move) + k) % 3]


def expert_move(history: list[tuple[str, str]]) -> str:
    """The move that beats the best-scoring prediction of the other's next move.

    Args:
        history: completed rounds as (own move, other's move).

    Hypotheses: the other repeats its most frequent move so far, or plays a fixed shift (same, the
    move that beats it, the move it beats) of its own or our last move. Each is scored by how many
    completed rounds it would have predicted; the first best one (in that order) is used.
    """
    if not history:
        return "paper"

    def predict(hypothesis: tuple[str, int], past: list[tuple[str, str]]) -> str | None:
        kind, k = hypothesis
        if kind == "frequency":
            if not past:
                return None
            counts = Counter(theirs for _, theirs in past)
            return max(MOVES, key=lambda m: (counts[m], -MOVES.index(m)))
        if not past:
            return None
        mine, theirs = past[-1]
        return _shift(mine if kind == "mine" else theirs, k)

    hypotheses = [("frequency", 0)] + [(kind, k) for kind in ("mine", "theirs") for k in (1, 0, 2)]
    scores = [sum(predict(h, history[:i]) == history[i][1] for i in range(len(history))) for h in hypotheses]
    best = hypotheses[int(np.argmax(scores))]
    prediction = predict(best, history)
    assert prediction is not None, "history is not empty"
    return beats(prediction)


class RockPaperScissors(MultiAgentTextEnv):
    """Repeated Rock-Paper-Scissors for two seats (see the module docstring).

    Args:
        rounds: rounds in a game.
        max_format_errors: unreadable moves a seat may make in one game before it forfeits.
        bias: how often a "biased" scripted player plays its favourite move.
    """

    def __init__(self, *, rounds: int = 9, max_format_errors: int = 3, bias: float = 0.6):
        if rounds < 1:
            raise ValueError(f"rounds={rounds}; a game needs at least 1 round")
        if not 0.0 <= bias <= 1.0:
            raise ValueError(f"bias={bias}; it is a probability in [0, 1]")
        super().__init__(num_players=2, max_turns=2 * rounds + 2 * max_format_errors)
        self.rounds, self.max_format_errors, self.bias = rounds, max_format_errors, float(bias)
        self.rounds_played: list[tuple[str, str]] = []  # (player_0's move, player_1's move)
        self.pending: str | None = None  # player_0's move in the current round, hidden from player_1
        self.favourite: dict[str, str] = {}
        self.errors: dict[str, int] = {}

    def system_prompt_for(self, agent: str) -> str:
        return (
            f"You are playing {self.rounds} rounds of Rock-Paper-Scissors against an opponent. Each round "
            "both players pick rock, paper or scissors without seeing the other's pick; rock beats "
            "scissors, scissors beats paper, paper beats rock, equal picks draw. After each round both "
            "picks are revealed. Win more rounds than your opponent. " + MOVE_FORMAT.format(example="rock")
        )

    def _reset(self, options: dict[str, Any] | None) -> str:
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; RockPaperScissors takes none")
        self.rounds_played, self.pending = [], None
        self.favourite = {a: MOVES[int(self.np_random.integers(3))] for a in self.possible_agents}
        self.errors = dict.fromkeys(self.possible_agents, 0)
        return f"rps-{self.rounds}"

    def history(self, agent: str) -> list[tuple[str, str]]:
        """Completed rounds from `agent`'s side: (its move, the other's move)."""
        if self.possible_agents.index(agent) == 0:
            return list(self.rounds_played)
        return [(b, a) for a, b in self.rounds_played]

    def score(self, agent: str) -> tuple[int, int, int]:
        """(wins, losses, draws) of `agent` over the completed rounds."""
        results = [round_result(mine, theirs) for mine, theirs in self.history(agent)]
        return results.count(1), results.count(-1), results.count(0)

    def _observe(self, agent: str) -> str:
        lines = []
        history = self.history(agent)
        if history:
            mine, theirs = history[-1]
            verdict = {1: "you win the round", -1: "you lose the round", 0: "a draw"}[
                round_result(mine, theirs)
            ]
            lines.append(
                f"Round {len(history)}: you played {mine}, your opponent played {theirs}: {verdict}."
            )
        wins, losses, draws = self.score(agent)
        lines.append(
            f"Score after {len(history)} of {self.rounds} rounds: {wins} won, {losses} lost, {draws} drawn."
        )
        if self.game_over:
            outcome = "a draw" if self.winner is None else "you win" if self.winner == agent else "you lose"
            lines.append(f"Game over: {outcome}.")
        else:
            lines.append(f"Round {len(history) + 1}: your move (rock, paper or scissors).")
        return "\n".join(lines)

    def progress(self, agent: str) -> float:
        """Rounds won so far over all rounds."""
        return self.score(agent)[0] / self.rounds

    def legal_actions(self, agent: str) -> list[str]:
        return [f"[{m}]" for m in MOVES]

    def expert_action(self, agent: str) -> str:
        return f"[{expert_move(self.history(agent))}]"

    def _step(self, agent: str, action: str) -> MoveOutcome:
        move = (last_bracketed(action) or "").lower()
        if move not in MOVES:
            error = "no move in [rock], [paper] or [scissors] found in the reply"
            self.errors[agent] += 1
            if self.errors[agent] > self.max_format_errors:
                other = self.possible_agents[1 - self.possible_agents.index(agent)]
                return MoveOutcome(
                    rewards={other: 1.0},
                    game_over=True,
                    winner=other,
                    format_error=error,
                    feedback=f"Invalid move ({error}); too many invalid moves: you forfeit.",
                )
            return MoveOutcome(
                format_error=error, feedback=f"Invalid move: {error}. {MOVE_FORMAT.format(example='rock')}"
            )
        if self.pending is None:
            self.pending = move
            return MoveOutcome()
        self.rounds_played.append((self.pending, move))
        self.pending = None
        if len(self.rounds_played) < self.rounds:
            return MoveOutcome()
        rewards, wins = {}, {}
        for seat in self.possible_agents:
            won, lost, _ = self.score(seat)
            rewards[seat] = ((won - lost) / self.rounds + 1) / 2
            wins[seat] = won
        first, second = self.possible_agents
        winner = None if wins[first] == wins[second] else max(wins, key=wins.__getitem__)
        return MoveOutcome(rewards=rewards, game_over=True, winner=winner)


def _biased(game: RockPaperScissors, agent: str, rng: np.random.Generator) -> str:
    if rng.random() < game.bias:
        return f"[{game.favourite[agent]}]"
    return f"[{MOVES[int(rng.integers(3))]}]"


def _pattern(game: RockPaperScissors, agent: str, rng: np.random.Generator) -> str:
    history = game.history(agent)
    if not history:
        return f"[{MOVES[int(rng.integers(3))]}]"
    return f"[{beats(history[-1][1])}]"


def _random(game: RockPaperScissors, agent: str, rng: np.random.Generator) -> str:
    return f"[{MOVES[int(rng.integers(3))]}]"


OPPONENTS: dict[str, Opponent[RockPaperScissors]] = {
    "biased": _biased,
    "pattern": _pattern,
    "random": _random,
}

DIFFICULTY_OPPONENT = {"easy": "biased", "medium": "pattern", "hard": "random"}
"""The scripted opponent at each difficulty (RPS's own: its hardest player is the random one)."""


def make_env(
    *,
    difficulty: str = "medium",
    opponent: str | None = None,
    seat: str | int = "random",
    rounds: int = 9,
    bias: float = 0.6,
    max_format_errors: int = 3,
    shaped: bool = False,
    render_mode: str | None = None,
) -> VersusEnv:
    """Repeated RPS against "biased" (easy), "pattern" (medium) or "random" (hard) play."""
    from palaestra.envs.games.registry import _opponent

    name = _opponent(difficulty, opponent or DIFFICULTY_OPPONENT.get(difficulty))
    game = RockPaperScissors(rounds=rounds, max_format_errors=max_format_errors, bias=bias)
    return VersusEnv(
        shaped=shaped, game=game, opponents=OPPONENTS, opponent=name, seat=seat, render_mode=render_mode
    )
