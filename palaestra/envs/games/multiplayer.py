"""The multi-player text game protocol, close to PettingZoo's AEC (agent-environment cycle).

Seats are named `player_0`, `player_1`, ... One seat acts at a time (`agent_selection`); it reads its
own view with `observe(agent)` and acts with `step(action)`, a text reply as in single-agent envs.
After every step, `rewards` holds each seat's reward for that step, `terminations` / `truncations` say
whether the game ended for each seat, and `infos` holds each seat's info (the standard keys:
`success`, `format_error`, `task_id`, `turn`; `expert_action` where a strong scripted player
exists; `legal_actions` where the moves are few). Unlike PettingZoo, a game ends for every seat at
once (all games here do), so there is no dead-agent stepping.

Infos are built when read (`SeatInfos`): a step computes no seat's info, so the expert's search and
the legal-move list cost nothing unless a consumer asks for them. Reading `infos[seat]` (or `last()`)
after a step gives exactly what an eager build would have given, `expert_action` included (for the
seats in `expert_seats`): that is the way to get expert actions at every step, e.g. for imitation or
semi-online RL. A `SeatInfos` belongs to one step: reading a seat's info from an earlier step's
mapping once the game moved on raises, since the game can no longer build it.

`MultiAgentTextEnv` implements the bookkeeping; a game implements `_reset`, `_observe`, `_step`
(the current seat's move) and `system_prompt_for`. `palaestra.envs.games.versus.VersusEnv` turns a
game plus opponents into a single-agent `gymnasium.Env` for training and evaluation.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium.utils import seeding

__all__ = ["MoveOutcome", "MultiAgentTextEnv", "SeatInfos", "seat_names"]


def seat_names(n: int) -> tuple[str, ...]:
    return tuple(f"player_{i}" for i in range(n))


@dataclass(slots=True)
class MoveOutcome:
    """What a game's `_step` returns for the move of the current seat.

    Attributes:
        rewards: reward of this step per seat (missing seats get 0).
        game_over: the game ended (for every seat).
        winner: the winning seat when the game is over; None for a draw or while it goes on.
        format_error: why the move could not be read or is illegal (the same seat moves again, unless
            the game ends it), else None.
        feedback: a message for the seat that moved (e.g. "Illegal move: ..."), may be empty.
        next_seat: who moves next (None: the next seat in order; ignored when the game is over).
        info: extra info merged into the mover's info.
    """

    rewards: dict[str, float] = field(default_factory=dict)
    game_over: bool = False
    winner: str | None = None
    format_error: str | None = None
    feedback: str = ""
    next_seat: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class SeatInfos(MutableMapping[str, dict[str, Any]]):
    """Each seat's info after one `reset`/`step`, built the first time it is read, then kept.

    Args:
        seats: the game's seats (the keys).
        build: seat -> its info, called at most once per seat (while the game is still at this step).

    Reading gives a plain `dict` the reader may keep or change; assigning a seat replaces its info.
    `expire()` (the game calls it when it moves on) makes unread seats unreadable: their info
    depended on a position that is gone.
    """

    __slots__ = ("_build", "_built", "_seats")

    def __init__(self, seats: tuple[str, ...], build: Callable[[str], dict[str, Any]]):
        self._seats = seats
        self._build: Callable[[str], dict[str, Any]] | None = build
        self._built: dict[str, dict[str, Any]] = {}

    def __getitem__(self, seat: str) -> dict[str, Any]:
        info = self._built.get(seat)
        if info is None:
            if seat not in self._seats:
                raise KeyError(seat)
            if self._build is None:
                raise RuntimeError(
                    f"the info of {seat!r} was read from an earlier step's `infos` after the game moved "
                    "on; read `game.infos` again after every step (or keep the seat's dict, not the mapping)"
                )
            info = self._built[seat] = self._build(seat)
        return info

    def __setitem__(self, seat: str, info: dict[str, Any]) -> None:
        if seat not in self._seats:
            raise KeyError(f"{seat!r} is not a seat of this game; seats: {self._seats}")
        self._built[seat] = info

    def __delitem__(self, seat: str) -> None:
        raise TypeError(f"every seat has an info; assign {seat!r} a new dict instead of deleting it")

    def __iter__(self) -> Iterator[str]:
        return iter(self._seats)

    def __len__(self) -> int:
        return len(self._seats)

    def __repr__(self) -> str:
        return f"SeatInfos({dict(self)!r})"

    def expire(self) -> None:
        """The game moved on: unread seats can no longer be built (reading them raises)."""
        self._build = None


class MultiAgentTextEnv(abc.ABC):
    """Base class of turn-based multi-player text games (see the module docstring).

    Args:
        num_players: seats in the game.
        max_turns: the game is truncated (a draw) after this many moves in all, format errors included.
    """

    metadata: dict[str, Any] = {"name": "multi-agent text game"}  # noqa: RUF012

    def __init__(self, *, num_players: int = 2, max_turns: int = 100):
        self.possible_agents: tuple[str, ...] = seat_names(num_players)
        self.max_turns = max_turns
        self.agents: list[str] = []
        self.agent_selection: str = self.possible_agents[0]
        self.rewards: dict[str, float] = {}
        self.terminations: dict[str, bool] = {}
        self.truncations: dict[str, bool] = {}
        self.infos: MutableMapping[str, dict[str, Any]] = {}
        """Each seat's info after the last `reset`/`step` (a `SeatInfos`: built when read)."""
        self.winner: str | None = None
        self.expert_seats: set[str] | None = None
        """Seats whose info gets `expert_action` (None: all); skip costly searches for scripted seats."""
        self.turn = 0
        self.task_id = ""
        self.np_random: np.random.Generator = np.random.default_rng()
        self._feedback: dict[str, str] = {}

    # -- hooks -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _reset(self, options: dict[str, Any] | None) -> str:
        """Set up a new game with `self.np_random`; return its task id. Seat 0 moves first unless
        the game sets `self.agent_selection`."""

    @abc.abstractmethod
    def _observe(self, agent: str) -> str:
        """The game as `agent` sees it now (its private information included, others' excluded)."""

    @abc.abstractmethod
    def _step(self, agent: str, action: str) -> MoveOutcome:
        """Apply `agent`'s reply. Malformed or illegal moves return a `format_error`, never raise."""

    @abc.abstractmethod
    def system_prompt_for(self, agent: str) -> str:
        """The rules and action format, as told to `agent`."""

    def expert_action(self, agent: str) -> str | None:
        """A strong scripted player's reply for `agent` now (None if the game has none)."""
        return None

    def progress(self, agent: str) -> float | None:
        """How close `agent` is to a good outcome, in [0, 1], for shaped rewards (None: no measure)."""
        return None

    def seat_success(self, agent: str) -> bool:
        """The benchmark metric for `agent`: winning, unless the game defines it otherwise."""
        return self.winner == agent

    def legal_actions(self, agent: str) -> list[str] | None:
        """Every legal reply for `agent` now, when they are few (for random baselines); else None."""
        return None

    # -- protocol ----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        if seed is not None or self.turn == 0:
            self.np_random, _ = seeding.np_random(seed)
        self.agents = list(self.possible_agents)
        self.agent_selection = self.possible_agents[0]
        self.turn, self.winner = 0, None
        self._feedback = {}
        self.task_id = self._reset(options)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self._set_infos(None, None, None)

    def observe(self, agent: str) -> str:
        """`agent`'s view, preceded by the feedback on its own last move (if any)."""
        feedback = self._feedback.pop(agent, "")
        view = self._observe(agent)
        return f"{feedback}\n\n{view}" if feedback else view

    @property
    def game_over(self) -> bool:
        return not self.agents

    def step(self, action: str) -> None:
        """The current seat (`agent_selection`) plays `action`."""
        if self.game_over:
            raise RuntimeError("step called on a finished game; call reset() first")
        agent = self.agent_selection
        if not isinstance(action, str):
            outcome = MoveOutcome(format_error=f"action must be str, got {type(action).__name__}")
        else:
            outcome = self._step(agent, action)
        self.turn += 1
        self.rewards = dict.fromkeys(self.possible_agents, 0.0)
        for seat, reward in outcome.rewards.items():
            if seat in self.rewards:
                self.rewards[seat] = float(reward)
        if outcome.feedback:
            self._feedback[agent] = outcome.feedback
        over = outcome.game_over
        truncated = not over and self.turn >= self.max_turns
        if over or truncated:
            self.winner = outcome.winner if over else None
            self.terminations = dict.fromkeys(self.possible_agents, over)
            self.truncations = dict.fromkeys(self.possible_agents, truncated)
            self.agents = []
        elif outcome.format_error is None:
            self.agent_selection = outcome.next_seat or self._next_seat(agent)
        self._set_infos(agent, outcome.format_error, outcome.info)

    def last(self, agent: str | None = None) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """(observation, last reward, terminated, truncated, info) of `agent` (default: whose turn)."""
        agent = agent or self.agent_selection
        return (
            self.observe(agent),
            self.rewards.get(agent, 0.0),
            self.terminations.get(agent, False),
            self.truncations.get(agent, False),
            self.infos.get(agent, {}),
        )

    def _next_seat(self, agent: str) -> str:
        seats = self.possible_agents
        return seats[(seats.index(agent) + 1) % len(seats)]

    def _set_infos(self, mover: str | None, format_error: str | None, extra: dict[str, Any] | None) -> None:
        """Replace `infos` with this step's, built when read; `mover` gets `format_error` and `extra`."""
        if isinstance(self.infos, SeatInfos):
            self.infos.expire()
        # a partial of a bound method, not a closure: deepcopy and pickle follow it to the game's copy
        build = functools.partial(self._seat_info, mover=mover, format_error=format_error, extra=extra)
        self.infos = SeatInfos(self.possible_agents, build)

    def _seat_info(
        self, seat: str, *, mover: str | None, format_error: str | None, extra: dict[str, Any] | None
    ) -> dict[str, Any]:
        if seat != mover:
            return self._info(seat, format_error=None)
        info = self._info(seat, format_error=format_error)
        if extra:
            info.update(extra)
        return info

    def _info(self, agent: str, *, format_error: str | None) -> dict[str, Any]:
        info: dict[str, Any] = {
            "success": self.seat_success(agent),
            "format_error": format_error,
            "task_id": self.task_id,
            "turn": self.turn,
            "winner": self.winner,
            "to_move": None if self.game_over else self.agent_selection,
        }
        if not self.game_over and agent == self.agent_selection:
            expert = (
                self.expert_action(agent) if self.expert_seats is None or agent in self.expert_seats else None
            )
            if expert is not None:
                info["expert_action"] = expert
            legal = self.legal_actions(agent)
            if legal is not None:
                info["legal_actions"] = legal
        return info
