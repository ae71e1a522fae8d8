"""Multi-player rollouts: every seat of a game played by a policy or a scripted player, one trajectory
per policy seat.

    from palaestra.rollout.matches import Match, play_matches

    matches = [Match("palaestra/Game-TicTacToe-v0", seed=s, seats={"player_0": policy, "player_1": policy})
               for s in range(8)]                              # self-play: both seats are training data
    results = play_matches(policy_runner_config, matches)   # MatchResult per match, one Trajectory per seat

A seat is a `Policy` (the model being trained, a frozen model, an OpenAI-compatible endpoint) or the
name of one of the game's scripted players ("random", "heuristic", "optimal"). All matches run
concurrently and every policy seat's turn is a request to its backend, so the turns of all seats of
all matches are batched together (in self-play both seats share one backend). Each policy seat gets
its own token-exact trajectory: its system prompt, its own observations (`game.observe(seat)`),
its replies, and its own rewards (a reward that arrives after other seats' moves is added to the
seat's last turn). The game comes from the registered env: `palaestra.make(env_id).unwrapped.game`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from palaestra.agents.base import Generation, GenerationRequest, Message, Policy, SamplingParams
from palaestra.envs.games.multiplayer import MultiAgentTextEnv
from palaestra.envs.registration import make
from palaestra.rollout.chat import TokenChat
from palaestra.rollout.driver import (
    Episode,
    EpisodeDriver,
    EpisodeError,
    Step,
    TurnStrategy,
    episode_seed,
    jsonable,
)
from palaestra.rollout.runner import RolloutConfig, append_reply, append_tokens, policy_chat, policy_version
from palaestra.rollout.trajectory import Trajectory, Turn

__all__ = ["Match", "MatchResult", "SeatTurns", "game_of", "play_matches", "play_matches_async"]


def game_of(env_id: str, **env_kwargs: Any) -> tuple[MultiAgentTextEnv, Mapping[str, Any]]:
    """The multi-player game behind a registered two-player env, and its scripted players."""
    env: Any = make(env_id, **env_kwargs).unwrapped  # a TwoPlayerEnv, checked below
    game = getattr(env, "game", None)
    if not isinstance(game, MultiAgentTextEnv):
        raise ValueError(f"{env_id} is not a multi-player game (its env has no MultiAgentTextEnv `game`)")
    return game, env.opponents


@dataclass(frozen=True)
class Match:
    """One game to play: the env id (and kwargs), the seed, and who plays each seat.

    `seats` maps seat names ("player_0", ...) to a `Policy` or a scripted player's name.
    """

    env_id: str
    seed: int
    seats: Mapping[str, Policy | str]
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    sample: int = 0
    """Which sample of this game it is (the G samples of a group share `seed`, not sampling seeds)."""


@dataclass
class MatchResult:
    """How a match went: the winner (None: draw or unfinished), each policy seat's trajectory, and
    every seat's total reward."""

    match: Match
    winner: str | None
    trajectories: dict[str, Trajectory]
    returns: dict[str, float]
    error: str | None = None

    def outcome(self, seat: str) -> str:
        """ "win", "draw" or "loss" for `seat` ("error" if the match failed)."""
        if self.error is not None:
            return "error"
        return "draw" if self.winner is None else "win" if self.winner == seat else "loss"


class _Seat:
    """A policy seat's chat state and trajectory (as `PolicyTurns` records one episode)."""

    def __init__(
        self,
        policy: Policy,
        chat: TokenChat | None,
        sampling: SamplingParams,
        match: Match,
        seat: str,
        game: MultiAgentTextEnv,
    ):
        self.policy, self.chat, self.sampling, self.seat = policy, chat, sampling, seat
        self.traj = Trajectory(
            env_id=match.env_id,
            seed=match.seed,
            agent=policy.name,
            env_kwargs={**dict(match.env_kwargs), "seat": seat},
        )
        self.traj.task_id = f"{game.task_id}-{seat}"
        system = game.system_prompt_for(seat)
        self.messages: list[Message] = [{"role": "system", "content": system}] if system else []
        self.traj.messages = self.messages  # the same list: the trajectory records the seat's chat
        self.turn = 0
        self.last_generation: Generation | None = None

    async def act(self, game: MultiAgentTextEnv, match: Match) -> str:
        chat, traj = self.chat, self.traj
        observation = game.observe(self.seat)
        message: Message = {"role": "user", "content": observation}
        self.messages.append(message)
        if chat is not None:
            if self.last_generation is None:
                append_tokens(traj, chat.prompt_ids(self.messages), trainable=False)
                traj.prompt_length = len(traj.token_ids)
            else:
                ids = chat.continuation_ids(self.last_generation.token_ids, [message])
                append_tokens(traj, ids, trainable=False)
        if traj.turns:  # the observation this seat got after its last move
            traj.turns[-1].observation = observation
        seat_number = int(self.seat.rsplit("_", 1)[-1])
        sampling = replace(
            self.sampling, seed=episode_seed(self.sampling.seed, match.seed, seat_number, self.turn)
        )
        request = GenerationRequest(
            messages=tuple(self.messages),
            sampling=sampling,
            prompt_token_ids=tuple(traj.token_ids) if chat is not None else None,
            info=dict(game.infos.get(self.seat, {})),
            request_id=f"{match.env_id}/{match.seed}/{self.seat}/{self.turn}",
        )
        version = policy_version(self.policy)
        (generation,) = await self.policy.generate([request])
        if generation.finish_reason == "error":
            raise EpisodeError(f"generation failed for {self.seat}: {generation.error}")
        span = append_reply(traj, generation, chat is not None, self.policy.name, version=version)
        self.messages.append({"role": "assistant", "content": generation.text})
        self.last_generation = generation
        traj.turns.append(Turn(generation.text, "", 0.0, False, False, {}, generation.finish_reason, span))
        self.turn += 1
        return generation.text

    def record_step(self, game: MultiAgentTextEnv, reward: float, moved: bool) -> None:
        """Add this step's reward to the seat's last turn; after its own move, keep the step's info."""
        if not self.traj.turns:
            return
        last = self.traj.turns[-1]
        last.reward += reward
        if moved:
            last.info = jsonable(game.infos.get(self.seat, {}))


class _GameEnv(gym.Env):
    """The game as the driver's env: `reset` deals, `step` plays the current seat's move."""

    def __init__(self, game: MultiAgentTextEnv):
        self.game = game

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        self.game.reset(seed=seed)
        return "", {}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        self.game.step(action)
        return "", 0.0, self.game.game_over, False, {}

    def close(self) -> None:
        pass


class SeatTurns(TurnStrategy):
    """The match strategy: the env receives the move of whichever seat is to play (a policy's reply or
    a scripted player's move); rewards go to every policy seat's trajectory."""

    def __init__(
        self,
        match: Match,
        game: MultiAgentTextEnv,
        scripted: Mapping[str, Any],
        seat_for: Callable[[Policy, str], _Seat],
    ):
        self.match, self.game, self.scripted, self.seat_for = match, game, scripted, seat_for
        self.seats: dict[str, _Seat] = {}
        self.rng = np.random.default_rng([match.seed & 0xFFFFFFFF, 7])
        self.returns = dict.fromkeys(game.possible_agents, 0.0)
        self.result = MatchResult(match, None, {}, self.returns)
        self.mover = ""

    async def start(self, env: Any, observation: Any, info: dict[str, Any]) -> None:
        self.seats = {
            seat: self.seat_for(player, seat)
            for seat, player in self.match.seats.items()
            if not isinstance(player, str)
        }
        self.result.trajectories.update({s: self.seats[s].traj for s in self.seats})

    async def act(self, turn: int) -> str | None:
        game = self.game
        seat = game.agent_selection
        self.mover = seat
        if seat in self.seats:
            return await self.seats[seat].act(game, self.match)
        player = self.match.seats[seat]
        assert isinstance(player, str), f"seat {seat} is a policy seat without state"
        return self.scripted[player](game, seat, self.rng)

    async def record(self, turn: int, action: str, step: Step) -> bool:
        game, moves = self.game, turn + 1
        for name, reward in game.rewards.items():
            self.returns[name] += reward
            if name in self.seats:
                self.seats[name].record_step(game, reward, moved=name == self.mover)
        if moves > 20 * max(1, game.max_turns):
            raise EpisodeError(f"{self.match.env_id}: the game did not end after {moves} moves")
        if game.game_over:
            self._finish()
            return False
        return True

    def _finish(self) -> None:
        game, result = self.game, self.result
        result.winner = game.winner
        truncated = any(game.truncations.values())
        for name, state in self.seats.items():
            traj = state.traj
            traj.success = game.winner == name
            traj.terminated, traj.truncated = not truncated, truncated
            if traj.turns:
                traj.turns[-1].observation = game.observe(name)
                traj.turns[-1].terminated, traj.turns[-1].truncated = not truncated, truncated
                traj.turns[-1].info = {**jsonable(game.infos.get(name, {})), "outcome": result.outcome(name)}

    def fail(self, error: str) -> None:
        self.result.error = error
        for state in self.seats.values():
            state.traj.error, state.traj.success = error, False


async def play_matches_async(
    matches: Sequence[Match], config: RolloutConfig | None = None
) -> list[MatchResult]:
    """Play `matches` concurrently (see the module docstring); results in the order of `matches`.

    A match whose game raises or times out (`step_timeout_s`) ends with `MatchResult.error` set (and on
    its seats' trajectories); the others go on.

    Raises:
        ValueError: a match's env is not a multi-player game, or its seats do not fit the game.
    """
    config = config or RolloutConfig()
    chats: dict[int, TokenChat | None] = {}

    def seat_for(match: Match, game: MultiAgentTextEnv) -> Callable[[Policy, str], _Seat]:
        def build(policy: Policy, seat: str) -> _Seat:
            if id(policy) not in chats:  # one per policy: its own chat template
                chats[id(policy)] = policy_chat(policy)
            return _Seat(policy, chats[id(policy)], config.sampling, match, seat, game)

        return build

    strategies = []
    for match in matches:
        game, scripted = _checked_game(match)
        strategies.append(SeatTurns(match, game, scripted, seat_for(match, game)))

    def job(strategy: SeatTurns) -> Callable[[], Awaitable[MatchResult]]:
        async def one() -> MatchResult:
            match = strategy.match
            label = f"{match.env_id} seed={match.seed} (match)"
            await driver.run(Episode(partial(_GameEnv, strategy.game), match.seed, label=label), strategy)
            return strategy.result

        return one

    driver = EpisodeDriver(config)
    try:
        return await driver.run_all([job(s) for s in strategies])
    finally:
        driver.close()


def _checked_game(match: Match) -> tuple[MultiAgentTextEnv, Mapping[str, Any]]:
    """The match's game and scripted players, once its seats are checked against the game."""
    game, scripted = game_of(match.env_id, **dict(match.env_kwargs))
    unknown = set(match.seats) - set(game.possible_agents)
    missing = set(game.possible_agents) - set(match.seats)
    if unknown or missing:
        raise ValueError(
            f"{match.env_id}: seats {sorted(game.possible_agents)} needed; got {sorted(match.seats)}"
        )
    for seat, player in match.seats.items():
        if isinstance(player, str) and player not in scripted:
            raise ValueError(
                f"seat {seat}: no scripted player {player!r}; this game offers {sorted(scripted)}"
            )
    game.expert_seats = {seat for seat, player in match.seats.items() if not isinstance(player, str)}
    return game, scripted


def play_matches(matches: Sequence[Match], config: RolloutConfig | None = None) -> list[MatchResult]:
    """Synchronous `play_matches_async`."""
    return asyncio.run(play_matches_async(matches, config))
