"""`VersusEnv`: one seat of a multi-player game as a single-agent `gymnasium.Env`, opponents built in.

The learner plays one seat (`seat`: "first", "second", ... or "random", drawn from the seed); every
other seat is played by a scripted opponent of the game (`opponent`: "random", "heuristic",
"optimal", as the game offers), whose moves happen inside `reset`/`step`. The learner's observation
after each step is its own view of the game, which reports the opponents' moves. Rewards are the
learner seat's rewards from the game (summed over the opponents' moves that follow), so the episode
return is the game's outcome for the learner: 1 for a win, `draw_reward` for a draw, 0 for a loss (or
a game-specific utility in [0, 1]). `success` is the game's own (winning, or e.g. a good deal).

`shaped=True` (games with a `progress` measure): each learner move earns `SHAPING_SCALE` times the
gain of its progress over its best so far (after the opponents' replies), and the end of the game
tops the return up to the game's own outcome if that is higher (a win to 1.0, a draw to
`draw_reward`); the return stays in [0, 1], a loss earns at most `SHAPING_SCALE`.

Info keys besides the standard ones: `seat`, `opponent`, `outcome` ("win" / "draw" / "loss" once
the game is over), `legal_actions` and `expert_action` where the game has them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import numpy as np

from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.multiplayer import MultiAgentTextEnv

__all__ = ["OUTCOMES", "Opponent", "VersusEnv"]

GameT = TypeVar("GameT", bound=MultiAgentTextEnv)
Opponent = Callable[[GameT, str, np.random.Generator], str]
"""A scripted player of a game of type `GameT`: (game, its seat, its random generator) -> its reply;
`Opponent[TicTacToe]` for one game's players."""
OUTCOMES: tuple[str, ...] = ("win", "draw", "loss")
_RESET_TRIES = 10
SHAPING_SCALE = 0.5
"""Shaped rewards: the progress part of the return is at most this."""


class VersusEnv(TextEnv, Generic[GameT]):
    """A learner seat against scripted opponents (see the module docstring).

    Args:
        game: the game instance (a fresh one per env).
        opponents: the game's scripted players by name.
        opponent: which of `opponents` plays the other seats.
        seat: "random" (drawn from the reset seed), or a seat index / name ("player_1") / "first" / "second".
        shaped: dense rewards from the game's `progress` measure (see the module docstring).
        render_mode: None or "ansi".
    """

    def __init__(
        self,
        *,
        game: GameT,
        opponents: Mapping[str, Opponent[GameT]],
        opponent: str,
        seat: str | int = "random",
        shaped: bool = False,
        render_mode: str | None = None,
    ):
        if opponent not in opponents:
            raise ValueError(f"opponent={opponent!r}; this game offers {sorted(opponents)}")
        seats = game.possible_agents
        named = {"first": 0, "second": 1, **{name: i for i, name in enumerate(seats)}}
        if seat != "random" and not (isinstance(seat, int) and 0 <= seat < len(seats)) and seat not in named:
            raise ValueError(f"seat={seat!r}; choose 'random', 'first', 'second', an index or one of {seats}")
        super().__init__(max_turns=game.max_turns, render_mode=render_mode)
        self.game, self.opponents, self.opponent_name = game, dict(opponents), opponent
        self.seat_choice = seat if isinstance(seat, int) or seat == "random" else named[seat]
        self.learner = seats[0]
        self._opponent_rng = np.random.default_rng(0)
        self.shaped = bool(shaped)
        if self.shaped and game.progress(seats[0]) is None:
            raise ValueError(
                f"shaped=True: {type(game).__name__} has no progress measure to shape rewards with"
            )
        self._best = 0.0
        self._shaped_total = 0.0
        self._outcome_total = 0.0

    @property
    def system_prompt(self) -> str:
        return self.game.system_prompt_for(self.learner)

    @system_prompt.setter
    def system_prompt(self, value: str) -> None:  # TextEnv.__init__ assigns ""; the game's prompt wins
        pass

    def _play_opponents(self) -> float:
        """Let the scripted seats move until the learner's turn or the end; the learner's rewards."""
        game, reward, moves = self.game, 0.0, 0
        while not game.game_over and game.agent_selection != self.learner:
            seat = game.agent_selection
            game.step(self.opponents[self.opponent_name](game, seat, self._opponent_rng))
            reward += game.rewards.get(self.learner, 0.0)
            moves += 1
            if moves > 10 * max(1, game.max_turns):
                raise RuntimeError(
                    f"opponent {self.opponent_name!r} keeps failing to move in {type(game).__name__}"
                )
        return reward

    def _shape(self, game_reward: float) -> float:
        """The shaped reward of this learner step (see the module docstring)."""
        self._outcome_total += game_reward
        if self.game.game_over:
            reward = max(0.0, self._outcome_total - self._shaped_total)
        else:
            progress = min(max(self.game.progress(self.learner) or 0.0, 0.0), 1.0)
            reward = SHAPING_SCALE * max(progress - self._best, 0.0)
            self._best = max(self._best, progress)
        self._shaped_total += reward
        return reward

    def _outcome_info(self) -> dict[str, Any]:
        game = self.game
        info = dict(game.infos.get(self.learner, {}))
        info.update(seat=self.learner, opponent=self.opponent_name)
        if game.game_over:
            info["outcome"] = (
                "win" if game.winner == self.learner else "draw" if game.winner is None else "loss"
            )
        return info

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        seed = int(self.np_random.integers(2**31))
        self.game.reset(seed=seed, options=options)
        seats = self.game.possible_agents
        index = (
            int(self.np_random.integers(len(seats)))
            if self.seat_choice == "random"
            else int(self.seat_choice)
        )
        self.learner = seats[index]
        self.game.expert_seats = {self.learner}  # no expert search for the scripted seats
        self._opponent_rng = np.random.default_rng(int(self.np_random.integers(2**31)))
        self._play_opponents()
        for _ in range(_RESET_TRIES):  # a game the opponents end before the learner moves is redrawn
            if not self.game.game_over:
                break
            self.game.reset(seed=int(self.np_random.integers(2**31)), options=options)
            self._play_opponents()
        else:
            raise RuntimeError(
                f"{type(self.game).__name__}: the {self.opponent_name!r} opponent ended {_RESET_TRIES + 1} "
                "games in a row before the learner's first move"
            )
        self._best = (self.game.progress(self.learner) or 0.0) if self.shaped else 0.0
        self._shaped_total = self._outcome_total = 0.0
        info = self._outcome_info()
        info.pop("turn", None)  # the learner has not acted yet, whatever the opponents did
        info["task_id"] = f"{self.game.task_id}-{self.learner}"
        return self.game.observe(self.learner), info

    def _step(self, action: str) -> StepOutcome:
        game = self.game
        game.step(action)
        reward = game.rewards.get(self.learner, 0.0)
        format_error = game.infos[self.learner].get("format_error")
        if not game.game_over and format_error is None:
            reward += self._play_opponents()
        if self.shaped:
            reward = self._shape(reward)
        info = self._outcome_info()
        info.pop("task_id", None)
        info.pop("turn", None)
        return StepOutcome(
            game.observe(self.learner),
            reward=reward,
            terminated=any(game.terminations.values()),
            truncated=any(game.truncations.values()),
            success=bool(game.infos[self.learner].get("success", game.winner == self.learner)),
            format_error=format_error,
            info=info,
        )
