"""Registrations of the two-player duels (Connect Four, Negotiation, Rock-Paper-Scissors).

Each is a single-agent env against a scripted opponent (`palaestra.envs.games.versus.VersusEnv`); the
entry points are lazy, so importing this module imports none of the games.
"""

from __future__ import annotations

from palaestra.envs.registration import register_env

__all__: list[str] = []

register_env(
    "palaestra/Game-ConnectFour-v0",
    "palaestra.envs.games.connect_four:make_env",
    description="Connect Four (6x7) against a scripted opponent (difficulty: random / heuristic / alpha-beta)",
    family="Game",
    max_turns=48,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)

register_env(
    "palaestra/Game-Negotiation-v0",
    "palaestra.envs.games.negotiation:make_env",
    description="Bargaining over books, hats and balls with private values (difficulty: opponent and rounds)",
    family="Game",
    max_turns=14,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)

register_env(
    "palaestra/Game-RockPaperScissors-v0",
    "palaestra.envs.games.rps:make_env",
    description="Nine rounds of Rock-Paper-Scissors (difficulty: biased / pattern / uniform-random opponent)",
    family="Game",
    max_turns=24,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)
