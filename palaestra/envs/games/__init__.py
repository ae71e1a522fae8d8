"""Games: single-agent puzzles, dialogue games and two-player games (as single-agent envs against
scripted opponents, or multi-player through `palaestra.envs.games.multiplayer`).

Importing this package only registers the env ids (lazy entry points).
"""

from __future__ import annotations

import importlib

from palaestra.envs.registration import register_env

register_env(
    "palaestra/TicTacToe-v0",
    "palaestra.envs.games.registry:tictactoe",
    description="TicTacToe against a scripted opponent (difficulty: random / heuristic / optimal)",
    family="Games",
    max_turns=15,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)

# TEMPORARY while the game groups are being written; replaced by explicit imports.
for _group in ("puzzles", "grids", "dialogue", "duels"):
    try:
        importlib.import_module(f"palaestra.envs.games.ids_{_group}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"palaestra.envs.games.ids_{_group}":
            raise
