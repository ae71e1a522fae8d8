"""Evaluate a policy against opponents in multi-player games: win / draw / loss per opponent kind.

    evaluate_against(policy, "palaestra/Game-TicTacToe-v0", "optimal", episodes=100)    # a scripted player
    evaluate_against(policy, "palaestra/Game-ConnectFour-v0", other_policy, episodes=50) # a fixed model
    evaluate_against(policy, "palaestra/Game-TicTacToe-v0", "self", episodes=50)         # self-play

The policy plays seat `seed % num_players` of match `seed` (so it plays every seat equally often),
every other seat is the opponent. The result is an `EvalResult` over the policy's trajectories, whose
summary has `outcomes` (win / draw / loss rates).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from palaestra.agents.base import Policy
from palaestra.envs.registration import resolve_id
from palaestra.evaluation.evaluate import EvalResult
from palaestra.evaluation.stats import summarize
from palaestra.rollout.matches import Match, game_of, play_matches_async
from palaestra.rollout.runner import RolloutConfig

__all__ = ["evaluate_against", "opponent_name"]


def opponent_name(opponent: str | Policy) -> str:
    return opponent if isinstance(opponent, str) else opponent.name


def evaluate_against(
    policy: Policy,
    env_id: str,
    opponent: str | Policy,
    *,
    episodes: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    config: RolloutConfig | None = None,
) -> EvalResult:
    """Play `episodes` matches of `policy` against `opponent` (see the module docstring)."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes}; it must be >= 1")
    env_id = resolve_id(env_id)
    env_kwargs = dict(env_kwargs or {})
    game, scripted = game_of(env_id, **env_kwargs)
    if isinstance(opponent, str) and opponent != "self" and opponent not in scripted:
        raise ValueError(f"opponent={opponent!r}; {env_id} offers 'self', a Policy, or {sorted(scripted)}")
    seats = game.possible_agents
    other = policy if opponent == "self" else opponent
    matches = []
    for s in range(seed, seed + episodes):
        learner = seats[s % len(seats)]
        matches.append(
            Match(env_id, s, {seat: policy if seat == learner else other for seat in seats}, env_kwargs)
        )
    start = time.perf_counter()
    results = asyncio.run(play_matches_async(matches, config))
    wall = time.perf_counter() - start
    trajectories = [r.trajectories[seats[m.seed % len(seats)]] for m, r in zip(matches, results, strict=True)]
    return EvalResult(
        env_id,
        f"{policy.name} vs {opponent_name(opponent)}",
        [m.seed for m in matches],
        env_kwargs,
        config or RolloutConfig(),
        summarize(trajectories, wall),
        trajectories,
    )
