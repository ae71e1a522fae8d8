"""Self-play rollouts: the policy plays every seat of a multi-player game (`rollout.self_play`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from palaestra.agents.base import Policy
from palaestra.rollout.runner import RolloutConfig, Task
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.tracking import nan_mean

__all__ = ["self_play"]


async def self_play(
    policy: Policy, tasks: Sequence[Task], config: RolloutConfig
) -> tuple[list[Trajectory], dict[str, float]]:
    """`group_size` self-play games per task; every seat's trajectory is training data.

    Group `task_index * num_seats + seat` holds the G samples of one seat of one game (same
    start, same role), so group-relative advantages compare like with like.

    Returns:
        The seats' trajectories (a seat the game ended for before it moved has none) and the metrics
        `self_play/draw_rate` and `self_play/first_seat_win_rate` over the decided games.
    """
    from palaestra.rollout.matches import Match, game_of, play_matches_async

    matches, seat_names = [], []
    for task in tasks:
        game, _ = game_of(task.env_id, **task.env_kwargs)
        seat_names.append(game.possible_agents)
        matches += [
            Match(task.env_id, task.seed, dict.fromkeys(game.possible_agents, policy), task.env_kwargs, j)
            for j in range(config.group_size)
        ]
    results = await play_matches_async(matches, replace(config, group_size=1))
    trajectories: list[Trajectory] = []
    group = 0
    for i, seats in enumerate(seat_names):
        for k, seat in enumerate(seats):
            for j in range(config.group_size):
                traj = results[i * config.group_size + j].trajectories[seat]
                traj.group_index, traj.sample_index = group + k, j
                if traj.turns:  # a seat the game ended for before it moved has nothing to learn
                    trajectories.append(traj)
        group += len(seats)
    decided = [r for r in results if r.error is None]
    metrics = {
        "self_play/draw_rate": nan_mean([float(r.winner is None) for r in decided]),
        "self_play/first_seat_win_rate": nan_mean(
            [float(r.winner == next(iter(r.match.seats))) for r in decided]
        ),
    }
    return trajectories, metrics
