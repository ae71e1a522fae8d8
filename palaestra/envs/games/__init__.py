"""Games: single-agent puzzles, dialogue games and two-player games (as single-agent envs against
scripted opponents, or multi-player through `palaestra.envs.games.multiplayer`).

Importing this package only registers the env ids (lazy entry points).
"""

from __future__ import annotations

from palaestra.envs.registration import register_env

register_env(
    "palaestra/Game-TicTacToe-v0",
    "palaestra.envs.games.registry:tictactoe",
    description="TicTacToe against a scripted opponent (difficulty: random / heuristic / optimal)",
    family="Game",
    max_turns=15,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)

from palaestra.envs.games import ids_dialogue as _dialogue  # noqa: E402, F401
from palaestra.envs.games import ids_duels as _duels  # noqa: E402, F401
from palaestra.envs.games import ids_grids as _grids  # noqa: E402, F401
from palaestra.envs.games import ids_puzzles as _puzzles  # noqa: E402, F401
