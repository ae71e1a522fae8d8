"""Registrations of the grid puzzles: Sokoban, FrozenLake, Minesweeper (lazy entry points)."""

from __future__ import annotations

from palaestra.envs.registration import register_env

register_env(
    "palaestra/Game-Sokoban-v0",
    "palaestra.envs.games.sokoban:SokobanEnv",
    description="Sokoban on generated solvable levels (easy 6x6/1 box, medium 7x7/2, hard 8x8/3)",
    family="Game",
    max_turns=80,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)
register_env(
    "palaestra/Game-FrozenLake-v0",
    "palaestra.envs.games.frozenlake:FrozenLakeEnv",
    description="FrozenLake on random maps with a path (easy 4x4, medium 6x6, hard 8x8; slippery optional)",
    family="Game",
    max_turns=24,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)
register_env(
    "palaestra/Game-Minesweeper-v0",
    "palaestra.envs.games.minesweeper:MinesweeperEnv",
    description="Minesweeper with a safe first reveal (easy 5x5/3 mines, medium 8x8/10, hard 10x10/20)",
    family="Game",
    max_turns=64,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)
