"""Negotiation ("bargaining"): two players divide a pool of items they value differently and privately.

The pool holds 1-4 books, hats and balls. Each player has private whole-number values per item, drawn
so that the whole pool is worth exactly 10 to each player (and the two players' values differ). Players
alternate moves, player_0 first; a game has `rounds` rounds of one move per player (2 * rounds moves).

Move grammar (the content of the last `[...]` in the reply, case-insensitive):
    `[propose: books=B hats=H balls=L]`: offer a split in which the proposer takes B books, H hats and
        L balls and the other player gets the rest. All three items must appear exactly once, in any
        order, as `name=count` with a whole count between 0 and the pool's count, separated by spaces
        or commas. A new proposal replaces (rejects) any standing offer.
    `[accept]`: accept the other player's standing offer; the deal is made and the game ends.
    `[reject]`: reject the other player's standing offer without a counter-offer; the turn passes.
Anything else, a count above the pool's, or accepting / rejecting when there is no offer from the
other player, is a format error: the player is told why and moves again (format errors use no move);
after `max_format_errors` of them in one game the player walks away (no deal; the other seat wins).
After the last move without an accepted offer the game ends with no deal.

Rewards per seat, at the end: the seat's value of its share / 10 (in [0, 1]); no deal gives 0 to both.
Success (the `success` info key, and the single-agent env's success) for a seat: a deal that gives it
at least half of its total value (>= 5 of 10). The `winner` is the seat whose share is worth more to
itself (None on a tie or with no deal).

Scripted players (`OPPONENTS`): "random" (accepts a standing offer with probability 0.3, rejects it
with 0.1, else proposes a uniformly random split), "heuristic" and "optimal" (accept an offer worth at
least a threshold that decays linearly over the game, 8 -> 5 and 9 -> 6 out of 10; else propose the
greedy split that takes their most valued items until the threshold is met; "optimal" also accepts
any positive offer at its last chance). `expert_action` proposes, among the splits worth at least its
own decaying target (8 -> 5), the one that leaves the other player the most by an estimate of the
other's values learnt from its proposals; it accepts offers that meet the target, and any positive
offer at its last chance.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np

from palaestra.envs.games.multiplayer import MoveOutcome, MultiAgentTextEnv
from palaestra.envs.games.parsing import last_bracketed
from palaestra.envs.games.versus import Opponent, VersusEnv

__all__ = ["ITEMS", "OPPONENTS", "TOTAL_VALUE", "Negotiation", "make_env"]

ITEMS = ("books", "hats", "balls")
TOTAL_VALUE = 10
EXAMPLE = "propose: books=1 hats=2 balls=0"
_PROPOSE_RE = re.compile(r"propose\s*:?\s*(.*)", re.DOTALL)
_PAIR_RE = re.compile(r"([a-z]+)\s*=\s*(\d+)")

Split = tuple[int, ...]
"""Counts of (books, hats, balls)."""


def value_of(values: Split, share: Split) -> int:
    return sum(v * n for v, n in zip(values, share, strict=True))


def format_split(share: Split) -> str:
    return " ".join(f"{name}={n}" for name, n in zip(ITEMS, share, strict=True))


def parse_proposal(text: str, counts: Split) -> tuple[Split | None, str | None]:
    """(split, None) for a well-formed feasible `propose:` body, else (None, why)."""
    match = _PROPOSE_RE.fullmatch(text)
    if match is None:
        return None, "not a proposal"
    body = match.group(1)
    pairs = _PAIR_RE.findall(body)
    leftover = _PAIR_RE.sub("", body)
    names = [name for name, _ in pairs]
    if re.fullmatch(r"[\s,;]*", leftover) is None or sorted(names) != sorted(ITEMS):
        return None, f"a proposal names books, hats and balls once each, like [{EXAMPLE}]"
    take = dict(pairs)
    split = tuple(int(take[name]) for name in ITEMS)
    for name, n, pool in zip(ITEMS, split, counts, strict=True):
        if n > pool:
            return None, f"you asked for {n} {name} but the pool has {pool}"
    return split, None


def _valuations(counts: Split) -> list[Split]:
    """Every per-item value vector worth TOTAL_VALUE over `counts`, with >= 2 valued items."""
    ranges = [range(TOTAL_VALUE // n + 1) for n in counts]
    return [
        v
        for v in itertools.product(*ranges)
        if value_of(v, counts) == TOTAL_VALUE and sum(x > 0 for x in v) >= 2
    ]


def _threshold(start: float, end: float, move: int, max_moves: int) -> float:
    """A demand that decays linearly from `start` (first move) to `end` (last move)."""
    return start - (start - end) * move / max(1, max_moves - 1)


def _greedy_split(values: Split, counts: Split, target: float) -> Split:
    """Take the most valued units first until their value reaches `target`."""
    take = [0, 0, 0]
    for i in sorted(range(3), key=lambda i: -values[i]):
        while take[i] < counts[i] and value_of(values, tuple(take)) < target and values[i] > 0:
            take[i] += 1
    return tuple(take)


class Negotiation(MultiAgentTextEnv):
    """Multi-issue bargaining for two seats (see the module docstring).

    Args:
        rounds: rounds of one move per player; the game ends with no deal after 2 * rounds moves.
        max_format_errors: unreadable or illegal moves a seat may make in one game before it walks away.
    """

    def __init__(self, *, rounds: int = 4, max_format_errors: int = 3):
        if rounds < 1:
            raise ValueError(f"rounds={rounds}; a negotiation needs at least 1 round")
        super().__init__(num_players=2, max_turns=2 * rounds + 2 * max_format_errors)
        self.rounds, self.max_format_errors = rounds, max_format_errors
        self.max_moves = 2 * rounds
        self.counts: Split = (1, 1, 1)
        self.values: dict[str, Split] = {}
        self.offer: tuple[str, Split] | None = None  # (proposer, what the proposer takes)
        self.deal: dict[str, Split] | None = None
        self.log: list[tuple[str, str]] = []  # (seat, move text)
        self.proposals: dict[str, list[Split]] = {}
        self.moves = 0
        self.errors: dict[str, int] = {}

    def progress(self, agent: str) -> float:
        """Value to `agent` of the share the other side's standing offer leaves it, over 10 (0 when the
        offer on the table is its own: proposing a greedy split earns nothing by itself)."""
        if self.offer is None or self.offer[0] == agent:
            return 0.0
        return value_of(self.values[agent], self.rest(self.offer[1])) / 10

    def other(self, agent: str) -> str:
        return self.possible_agents[1 - self.possible_agents.index(agent)]

    def rest(self, share: Split) -> Split:
        return tuple(c - n for c, n in zip(self.counts, share, strict=True))

    def system_prompt_for(self, agent: str) -> str:
        return (
            "You are negotiating with another player over how to divide a pool of books, hats and balls. "
            f"You each value the items differently and privately; the whole pool is worth {TOTAL_VALUE} "
            f"points to each of you. You take turns; the negotiation lasts at most {self.max_moves} moves "
            "in all. On your move, reply with one of: [propose: books=B hats=H balls=L] to offer a split in "
            "which you take B books, H hats and L balls and the other player gets the rest (name all three "
            "items, counts from 0 to the pool's); [accept] to accept the other player's standing offer, "
            "which ends the game; or [reject] to refuse it without a counter-offer. If no deal is made, "
            f"both get 0. Your score is the value of your share out of {TOTAL_VALUE}. "
            f"Put your move in square brackets at the end of your reply, e.g. [{EXAMPLE}]."
        )

    def _reset(self, options: dict[str, Any] | None) -> str:
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; Negotiation takes none")
        rng = self.np_random
        while True:
            counts: Split = tuple(int(n) for n in rng.integers(1, 5, size=3))
            valuations = _valuations(counts)
            if len(valuations) < 3:
                continue
            first, second = (valuations[int(i)] for i in rng.choice(len(valuations), size=2, replace=False))
            if all(a > 0 or b > 0 for a, b in zip(first, second, strict=True)):
                break
        self.counts = counts
        self.values = dict(zip(self.possible_agents, (first, second), strict=True))
        self.offer, self.deal, self.log, self.moves = None, None, [], 0
        self.proposals = {a: [] for a in self.possible_agents}
        self.errors = dict.fromkeys(self.possible_agents, 0)
        return (
            f"negotiation-{''.join(map(str, counts))}-{''.join(map(str, first))}-{''.join(map(str, second))}"
        )

    def _observe(self, agent: str) -> str:
        values = self.values[agent]
        pool = ", ".join(f"{n} {name}" for name, n in zip(ITEMS, self.counts, strict=True))
        worth = ", ".join(f"{name[:-1]} {v}" for name, v in zip(ITEMS, values, strict=True))
        lines = [
            f"Pool: {pool}.",
            f"Your private values per item: {worth}; the whole pool is worth {TOTAL_VALUE} to you.",
        ]
        if self.log:
            lines.append("Moves so far:")
            lines += [
                f"  {i + 1}. {'you' if seat == agent else 'your opponent'}: [{move}]"
                for i, (seat, move) in enumerate(self.log)
            ]
        if self.game_over:
            if self.deal is None:
                lines.append("Game over: no deal; you both get 0.")
            else:
                share = self.deal[agent]
                lines.append(
                    f"Game over: deal. You get {format_split(share)}, worth {value_of(values, share)} to you."
                )
            return "\n".join(lines)
        if self.offer is not None and self.offer[0] != agent:
            share = self.rest(self.offer[1])
            lines.append(
                f"Standing offer from your opponent: you get {format_split(share)} "
                f"(worth {value_of(values, share)} to you); they take {format_split(self.offer[1])}."
            )
        left = self.max_moves - self.moves
        lines.append(f"Moves left (both players): {left}." + (" This is the last move." if left == 1 else ""))
        lines.append("Your move: [propose: books=B hats=H balls=L] (what you take), [accept] or [reject].")
        return "\n".join(lines)

    def legal_actions(self, agent: str) -> list[str]:
        splits = itertools.product(*(range(n + 1) for n in self.counts))
        actions = [f"[propose: {format_split(s)}]" for s in splits]
        if self.offer is not None and self.offer[0] != agent:
            actions += ["[accept]", "[reject]"]
        return actions

    def expert_action(self, agent: str) -> str:
        return _expert(self, agent)

    def _info(self, agent: str, *, format_error: str | None) -> dict[str, Any]:
        info = super()._info(agent, format_error=format_error)
        info["success"] = (
            self.deal is not None and 2 * value_of(self.values[agent], self.deal[agent]) >= TOTAL_VALUE
        )
        return info

    def _end(self, deal: dict[str, Split] | None) -> MoveOutcome:
        self.deal = deal
        if deal is None:
            return MoveOutcome(game_over=True)
        worth = {a: value_of(self.values[a], deal[a]) for a in self.possible_agents}
        first, second = self.possible_agents
        winner = None if worth[first] == worth[second] else max(worth, key=worth.__getitem__)
        return MoveOutcome(
            rewards={a: w / TOTAL_VALUE for a, w in worth.items()}, game_over=True, winner=winner
        )

    def _error(self, agent: str, error: str) -> MoveOutcome:
        self.errors[agent] += 1
        if self.errors[agent] > self.max_format_errors:
            self.deal = None
            return MoveOutcome(
                game_over=True,
                winner=self.other(agent),
                format_error=error,
                feedback=f"Invalid move ({error}); too many invalid moves: you walk away with no deal.",
            )
        return MoveOutcome(
            format_error=error,
            feedback=f"Invalid move: {error}. Reply e.g. [{EXAMPLE}], [accept] or [reject].",
        )

    def _step(self, agent: str, action: str) -> MoveOutcome:
        move = " ".join((last_bracketed(action) or "").lower().split())
        offered = self.offer is not None and self.offer[0] != agent
        if move in ("accept", "reject"):
            if not offered:
                return self._error(agent, f"there is no offer from your opponent to {move}")
            assert self.offer is not None
            proposer, take = self.offer
            self.log.append((agent, move))
            self.moves += 1
            if move == "accept":
                return self._end({proposer: take, agent: self.rest(take)})
            self.offer = None
        else:
            split, error = parse_proposal(move, self.counts)
            if split is None:
                if error == "not a proposal":
                    error = f"no [propose: ...], [accept] or [reject] found in the reply (e.g. [{EXAMPLE}])"
                return self._error(agent, str(error))
            self.offer = (agent, split)
            self.proposals[agent].append(split)
            self.log.append((agent, f"propose: {format_split(split)}"))
            self.moves += 1
        if self.moves >= self.max_moves:
            return self._end(None)
        return MoveOutcome()


# -- scripted players ------------------------------------------------------------------------------
def _offered_value(game: Negotiation, agent: str) -> int | None:
    if game.offer is None or game.offer[0] == agent:
        return None
    return value_of(game.values[agent], game.rest(game.offer[1]))


def _random(game: Negotiation, agent: str, rng: np.random.Generator) -> str:
    if _offered_value(game, agent) is not None:
        draw = rng.random()
        if draw < 0.3:
            return "[accept]"
        if draw < 0.4:
            return "[reject]"
    split = tuple(int(rng.integers(n + 1)) for n in game.counts)
    return f"[propose: {format_split(split)}]"


def _threshold_player(start: float, end: float, *, last_chance_accepts: bool) -> Opponent[Negotiation]:
    def play(game: Negotiation, agent: str, rng: np.random.Generator) -> str:
        target = _threshold(start, end, game.moves, game.max_moves)
        offered = _offered_value(game, agent)
        last = game.moves == game.max_moves - 1
        if offered is not None and (offered >= target or (last_chance_accepts and last and offered > 0)):
            return "[accept]"
        return f"[propose: {format_split(_greedy_split(game.values[agent], game.counts, target))}]"

    return play


def _estimate_values(game: Negotiation, agent: str) -> np.ndarray:
    """The other's values per item, guessed from how much of each item its proposals kept."""
    counts = np.array(game.counts, dtype=float)
    proposals = game.proposals[game.other(agent)]
    kept = np.ones(3)  # no proposal yet: every unit alike
    if proposals:
        kept = np.mean([np.array(p) / counts for p in proposals], axis=0) + 0.1
    return kept * TOTAL_VALUE / float(kept @ counts)


def _expert(game: Negotiation, agent: str) -> str:
    values = game.values[agent]
    target = max(TOTAL_VALUE / 2, _threshold(8, 5, game.moves, game.max_moves))
    offered = _offered_value(game, agent)
    last = game.moves == game.max_moves - 1
    if offered is not None and (offered >= target or (last and offered > 0)):
        return "[accept]"
    guess = _estimate_values(game, agent)
    best_key: tuple[float, int] | None = None
    best: Split = (0, 0, 0)
    for split in itertools.product(*(range(n + 1) for n in game.counts)):
        mine = value_of(values, split)
        if mine < target:
            continue
        theirs = float(guess @ np.array(game.rest(split)))
        key = (round(theirs, 6), -mine)
        if best_key is None or key > best_key:
            best_key, best = key, split
    if best_key is None:  # only the whole pool meets the target
        best = game.counts
    return f"[propose: {format_split(best)}]"


OPPONENTS: dict[str, Opponent[Negotiation]] = {
    "random": _random,
    "heuristic": _threshold_player(8, 5, last_chance_accepts=False),
    "optimal": _threshold_player(9, 6, last_chance_accepts=True),
}

ROUNDS = {"easy": 5, "medium": 4, "hard": 3}
"""Rounds (one move per player) at each difficulty."""


def make_env(
    *,
    difficulty: str = "medium",
    opponent: str | None = None,
    seat: str | int = "random",
    rounds: int | None = None,
    max_format_errors: int = 3,
    shaped: bool = False,
    render_mode: str | None = None,
) -> VersusEnv:
    """Negotiation against "random" (easy), "heuristic" (medium) or "optimal" (hard, tougher) players.

    `rounds` defaults to `ROUNDS[difficulty]` (fewer rounds when harder).
    """
    from palaestra.envs.games.registry import _opponent

    name = _opponent(difficulty, opponent)
    game = Negotiation(
        rounds=rounds if rounds is not None else ROUNDS[difficulty], max_format_errors=max_format_errors
    )
    return VersusEnv(
        shaped=shaped, game=game, opponents=OPPONENTS, opponent=name, seat=seat, render_mode=render_mode
    )
