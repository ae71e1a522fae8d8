"""Registrations of the single-player guessing puzzles (lazy entry points; importing this is cheap).

Each env takes `difficulty` ("easy" / "medium" / "hard"), `shaped` (dense progress rewards, episode
return still in [0, 1]) and `max_format_errors`. `max_turns` below is the medium preset's bound: its
most guesses plus `max_format_errors + 1` invalid replies.
"""

from __future__ import annotations

from palaestra.envs.registration import register_env

register_env(
    "palaestra/Game-Wordle-v0",
    "palaestra.envs.games.wordle:WordleEnv",
    description="Wordle: find a hidden 5-letter word from G/Y/X letter feedback (hard: hard mode, all words)",
    family="Game",
    max_turns=10,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)
register_env(
    "palaestra/Game-Hangman-v0",
    "palaestra.envs.games.hangman:HangmanEnv",
    description="Hangman: reveal a hidden word letter by letter before the lives run out (short words: hard)",
    family="Game",
    max_turns=16,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)
register_env(
    "palaestra/Game-Mastermind-v0",
    "palaestra.envs.games.mastermind:MastermindEnv",
    description="Mastermind: crack a colour code from black/white peg feedback in 10 guesses (4x6 to 5x8)",
    family="Game",
    max_turns=14,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)
register_env(
    "palaestra/Game-GuessTheNumber-v0",
    "palaestra.envs.games.guess_number:GuessTheNumberEnv",
    description="Guess the number from higher/lower hints (1-20, 1-100 or 1-1000)",
    family="Game",
    max_turns=11,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)
