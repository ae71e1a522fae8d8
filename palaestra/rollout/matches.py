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
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from palaestra.agents.base import GenerationRequest, Message, Policy
from palaestra.envs.games.multiplayer import MultiAgentTextEnv
from palaestra.envs.registration import make
from palaestra.rollout.runner import EpisodeError, RolloutConfig, RolloutRunner, _episode_seed, _jsonable
from palaestra.rollout.trajectory import Trajectory, Turn

__all__ = ["Match", "MatchResult", "game_of", "play_matches", "play_matches_async"]

logger = logging.getLogger(__name__)


def game_of(env_id: str, **env_kwargs: Any) -> tuple[MultiAgentTextEnv, Mapping[str, Any]]:
    """The multi-player game behind a registered two-player env, and its scripted players."""
    env = make(env_id, **env_kwargs).unwrapped
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
    """A policy seat's chat state and trajectory (mirrors `RolloutRunner._play` for one seat)."""

    def __init__(
        self, runner: RolloutRunner, policy: Policy, match: Match, seat: str, game: MultiAgentTextEnv
    ):
        self.runner, self.policy, self.seat = runner, policy, seat
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
        self.last_generation = None

    async def act(self, game: MultiAgentTextEnv, match: Match) -> str:
        runner, traj = self.runner, self.traj
        observation = game.observe(self.seat)
        message: Message = {"role": "user", "content": observation}
        if self.last_generation is None:
            self.messages.append(message)
            if runner.chat is not None:
                runner._append(traj, runner.chat.prompt_ids(self.messages), trainable=False)
                traj.prompt_length = len(traj.token_ids)
        else:
            self.messages.append(message)
            if runner.chat is not None:
                ids = runner.chat.continuation_ids(self.last_generation.token_ids, [message])
                runner._append(traj, ids, trainable=False)
        if traj.turns:  # the observation this seat got after its last move
            traj.turns[-1].observation = observation
        sampling = replace(
            runner.config.sampling,
            seed=_episode_seed(
                runner.config.sampling.seed, match.seed, int(self.seat.rsplit("_", 1)[-1]), self.turn
            ),
        )
        info = dict(game.infos.get(self.seat, {}))
        request = GenerationRequest(
            messages=tuple(self.messages),
            sampling=sampling,
            prompt_token_ids=tuple(traj.token_ids) if runner.chat is not None else None,
            info=info,
            request_id=f"{match.env_id}/{match.seed}/{self.seat}/{self.turn}",
        )
        (generation,) = await self.policy.generate([request])
        if generation.finish_reason == "error":
            raise EpisodeError(f"generation failed for {self.seat}: {generation.error}")
        span = runner._append_reply(traj, generation)
        self.messages.append({"role": "assistant", "content": generation.text})
        self.last_generation = generation
        traj.turns.append(
            Turn(
                action=generation.text,
                observation="",
                reward=0.0,
                terminated=False,
                truncated=False,
                info={},
                finish_reason=generation.finish_reason,
                token_span=span,
            )
        )
        self.turn += 1
        return generation.text

    def record_step(self, game: MultiAgentTextEnv, reward: float, moved: bool) -> None:
        """Add this step's reward to the seat's last turn; after its own move, keep the step's info."""
        if not self.traj.turns:
            return
        last = self.traj.turns[-1]
        last.reward += reward
        if moved:
            last.info = _jsonable(game.infos.get(self.seat, {}))


async def _play_match(runner_for: Callable[[Policy], RolloutRunner], match: Match) -> MatchResult:
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
    game.reset(seed=match.seed)
    rng = np.random.default_rng([match.seed & 0xFFFFFFFF, 7])
    seats = {
        seat: _Seat(runner_for(player), player, match, seat, game)
        for seat, player in match.seats.items()
        if not isinstance(player, str)
    }
    returns = dict.fromkeys(game.possible_agents, 0.0)
    result = MatchResult(match, None, {s: seats[s].traj for s in seats}, returns)
    try:
        moves = 0
        while not game.game_over:
            seat = game.agent_selection
            player = match.seats[seat]
            action = (
                await seats[seat].act(game, match) if seat in seats else scripted[player](game, seat, rng)
            )
            game.step(action)
            moves += 1
            for name, reward in game.rewards.items():
                returns[name] += reward
                if name in seats:
                    seats[name].record_step(game, reward, moved=name == seat)
            if moves > 20 * max(1, game.max_turns):
                raise EpisodeError(f"{match.env_id}: the game did not end after {moves} moves")
        result.winner = game.winner
        truncated = any(game.truncations.values())
        for name, state in seats.items():
            traj = state.traj
            traj.success = game.winner == name
            traj.terminated, traj.truncated = not truncated, truncated
            if traj.turns:
                traj.turns[-1].observation = game.observe(name)
                traj.turns[-1].terminated, traj.turns[-1].truncated = not truncated, truncated
                traj.turns[-1].info = {**_jsonable(game.infos.get(name, {})), "outcome": result.outcome(name)}
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        for state in seats.values():
            state.traj.error, state.traj.success = result.error, False
        logger.warning(
            "match %s seed=%d failed: %s\n%s", match.env_id, match.seed, result.error, traceback.format_exc()
        )
    return result


async def play_matches_async(
    matches: Sequence[Match], config: RolloutConfig | None = None
) -> list[MatchResult]:
    """Play `matches` concurrently (see the module docstring); results in the order of `matches`."""
    config = config or RolloutConfig()
    runners: dict[int, RolloutRunner] = {}
    limit = asyncio.Semaphore(config.max_concurrency)

    def runner_for(policy: Policy) -> RolloutRunner:  # one per policy: its own chat template
        if id(policy) not in runners:
            runners[id(policy)] = RolloutRunner(policy, config)
        return runners[id(policy)]

    async def one(match: Match) -> MatchResult:
        async with limit:
            return await _play_match(runner_for, match)

    try:
        return list(await asyncio.gather(*(one(m) for m in matches)))
    finally:
        for runner in runners.values():
            runner.close()


def play_matches(matches: Sequence[Match], config: RolloutConfig | None = None) -> list[MatchResult]:
    """Synchronous `play_matches_async`."""
    return asyncio.run(play_matches_async(matches, config))
