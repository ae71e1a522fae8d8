"""Registrations of the dialogue games (Twenty Questions, City Clues, Referential).

Each is a single-agent env that talks with a scripted partner (an oracle, a clue giver, a listener);
the entry points are lazy, so importing this module imports none of the games.
"""

from __future__ import annotations

from palaestra.envs.registration import register_env

__all__: list[str] = []

register_env(
    "palaestra/Game-TwentyQuestions-v0",
    "palaestra.envs.games.twenty_questions:TwentyQuestionsEnv",
    description="Twenty Questions: find the secret thing with yes/no questions (difficulty: candidate pool)",
    family="Game",
    max_turns=20,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)

register_env(
    "palaestra/Game-CityClues-v0",
    "palaestra.envs.games.city_clues:CityCluesEnv",
    description="Guess my city from clues that go from vague to specific (difficulty: number of clues)",
    family="Game",
    max_turns=5,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)

register_env(
    "palaestra/Game-Referential-v0",
    "palaestra.envs.games.referential:ReferentialEnv",
    description="Referential game: describe the target item so a scripted listener picks it (difficulty: distractors, words)",
    family="Game",
    max_turns=3,
    reward_range=(0.0, 1.0),
    kwargs={"difficulty": "medium"},
)
