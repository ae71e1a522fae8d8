"""Dialogue games: Twenty Questions, City Clues and the Referential game, through their public APIs."""

from __future__ import annotations

import itertools

import pytest

import palaestra
from palaestra.agents.spec import make_policy
from palaestra.envs.games.city_clues import load_cities
from palaestra.envs.games.referential import Item, ReferentialEnv, attribute_listener, shortest_description
from palaestra.envs.games.twenty_questions import load_knowledge_base
from palaestra.evaluation import evaluate

ENV_IDS = (
    "palaestra/Game-TwentyQuestions-v0",
    "palaestra/Game-CityClues-v0",
    "palaestra/Game-Referential-v0",
)


def _play(env, actions):
    """Step through `actions`; returns the last (observation, total reward, done, info)."""
    total, done, observation, info = 0.0, False, "", {}
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        total += reward
        if done := terminated or truncated:
            break
    return observation, total, done, info


def _play_expert(env, seed):
    _, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(info["expert_action"])
        total, done = total + reward, terminated or truncated
    return total, info


# -- every game -------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_oracle_solves_every_episode(env_id):
    result = evaluate(make_policy("scripted:oracle"), env_id, episodes=20)
    assert result.summary.success_rate == 1.0
    assert result.summary.format_error_rate == 0.0


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_oracle_solves_the_other_difficulties(env_id, difficulty):
    env = palaestra.make(env_id, difficulty=difficulty)
    for seed in range(10):
        total, info = _play_expert(env, seed)
        assert info["success"] and total == pytest.approx(1.0), (env_id, difficulty, seed)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_random_baseline_is_low(env_id):
    result = evaluate(make_policy("scripted:random"), env_id, episodes=10)
    assert result.summary.success_rate <= 0.1


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_format_errors_are_answered_and_count_as_a_turn(env_id):
    env = palaestra.make(env_id)
    env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step("I think I know but I won't say.")
    assert info["format_error"] and "bracket" in observation
    assert not terminated and not truncated and reward == 0.0 and info["turn"] == 1
    assert info["expert_action"].startswith("[")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_task(env_id):
    observations = {}
    for seed in (0, 1, 2, 3, 4, 5):
        first = palaestra.make(env_id).reset(seed=seed)
        second = palaestra.make(env_id).reset(seed=seed)
        assert first == second
        observations[seed] = first[1]["task_id"]
    assert len(set(observations.values())) > 1


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_shaped_returns_stay_in_range(env_id):
    env = palaestra.make(env_id, shaped=True)
    for seed in range(5):
        total, info = _play_expert(env, seed)
        assert info["success"] and 0.0 < total <= 1.0
        env.reset(seed=seed)
        _, total, done, _ = _play(env, ["[Is it an animal?]", "[guess: nothing]", "[red]"] + ["?"] * 20)
        assert done and 0.0 <= total <= 0.2


# -- Twenty Questions -------------------------------------------------------------------------------
def test_knowledge_base_is_complete_and_unambiguous():
    kb = load_knowledge_base()
    assert len(kb.entities) >= 80 and len(kb.attributes) >= 20
    for entity in kb.entities:
        assert set(entity.attributes) == set(kb.attributes), entity.name
        assert all(isinstance(v, bool) for v in entity.attributes.values()), entity.name
        assert entity.category in kb.categories
    signatures = [tuple(e.attributes[k] for k in kb.attributes) for e in kb.entities]
    twins = [
        (a.name, b.name) for a, b in itertools.combinations(kb.entities, 2) if a.attributes == b.attributes
    ]
    assert len(set(signatures)) == len(signatures), twins
    names = [form for e in kb.entities for form in (e.name, *e.aliases)]
    assert len(set(names)) == len(names)
    for attribute in kb.attributes.values():  # every listed phrasing reads back as its own attribute
        for question in attribute.questions:
            assert kb.parse_question(question) == attribute.key, question
        assert any(e.attributes[attribute.key] for e in kb.entities), attribute.key


@pytest.mark.parametrize(
    ("secret", "question", "answer"),
    [
        ("penguin", "Does it fly?", "no"),
        ("penguin", "Is it a bird?", "yes"),
        ("penguin", "is this a MAMMAL??", "no"),
        ("penguin", "Does it live in the water?", "yes"),
        ("penguin", "Is it black and white?", "yes"),
        ("penguin", "Does it eat meat?", "yes"),
        ("eagle", "Can it fly?", "yes"),
        ("fire truck", "Is it red?", "yes"),
        ("fire truck", "Does it have wheels?", "yes"),
        ("fire truck", "Is it bigger than a car?", "yes"),
        ("banana", "Can you eat it?", "yes"),
        ("banana", "Is it yellow?", "yes"),
        ("banana", "Does it have an engine?", "no"),
        ("penguin", "What colour is it?", "invalid"),
        ("penguin", "Is it not a bird?", "invalid"),
        ("penguin", "Is it a bird or a fish?", "invalid"),
        ("penguin", "Does it eat fish?", "invalid"),
        ("penguin", "Can it swim?", "invalid"),
        ("penguin", "Is it heavy?", "invalid"),
        ("dog", "Is it a wild animal?", "invalid"),
        ("dog", "Is it a kind of mammal?", "yes"),
        ("dog", "Is it something you can eat?", "no"),
    ],
)
def test_oracle_answers_hand_made_questions(secret, question, answer):
    kb = load_knowledge_base()
    entity = kb.entity(secret)
    assert entity is not None
    assert kb.answer(question, entity) == answer


def test_twenty_questions_episode_questions_guesses_and_aliases():
    env = palaestra.make("palaestra/Game-TwentyQuestions-v0", difficulty="hard")
    env.reset(seed=0, options={"secret": "airplane"})
    observation, _, _, _, info = env.step("Let me start broad. [Does it fly?]")
    assert observation.startswith("Yes") and info["answer"] == "yes" and info["questions_left"] == 19
    observation, _, _, _, info = env.step("[Is it an animal?]")
    assert observation.startswith("No") and info["answer"] == "no"
    observation, _, _, _, info = env.step("[Why?]")
    assert observation.startswith("Invalid") and info["format_error"] is None
    observation, _, terminated, _, info = env.step("[guess: helicopter]")
    assert not terminated and not info["success"] and "not" in observation
    observation, reward, terminated, _, info = env.step("[Is it a plane?]")  # an alias, asked as a question
    assert terminated and info["success"] and reward == 1.0
    env.reset(seed=0, options={"secret": "mouse"})
    _, reward, terminated, _, info = env.step("[guess: the Mice]")
    assert terminated and info["success"]


def test_twenty_questions_runs_out_of_questions():
    env = palaestra.make("palaestra/Game-TwentyQuestions-v0", max_questions=3)
    env.reset(seed=1)
    observation, total, done, info = _play(env, ["[Is it alive?]"] * 3)
    assert done and not info["success"] and total == 0.0 and "answer was" in observation


def test_twenty_questions_easy_lists_one_category():
    env = palaestra.make("palaestra/Game-TwentyQuestions-v0", difficulty="easy")
    observation, info = env.reset(seed=2)
    assert 10 <= info["candidates_left"] <= 20
    kb = load_knowledge_base()
    secret = info["task_id"].rsplit("/", 1)[1]
    assert secret in observation and kb.entity(secret) is not None


# -- City Clues -------------------------------------------------------------------------------------
def test_cities_have_clues_from_vague_to_specific():
    cities = load_cities()
    assert len(cities) >= 60 and len({c.name for c in cities}) == len(cities)
    for city in cities:
        assert len(city.clues) >= 5, city.name
        assert not any(city.name.split(",")[0].lower() in clue.lower().split() for clue in city.clues)


@pytest.mark.parametrize(
    ("city", "guess"),
    [
        ("Mumbai", "Bombay"),
        ("Rio de Janeiro", "rio"),
        ("New York City", "New York, USA"),
        ("Bogota", "Bogotá"),
    ],
)
def test_city_alternative_names_are_accepted(city, guess):
    env = palaestra.make("palaestra/Game-CityClues-v0")
    env.reset(seed=0, options={"city": city})
    _, reward, terminated, _, info = env.step(f"My guess: [{guess}]")
    assert terminated and info["success"] and reward == 1.0


def test_city_clues_reveal_one_clue_per_reply_and_shaping_prefers_fewer():
    env = palaestra.make("palaestra/Game-CityClues-v0", difficulty="easy", shaped=True)
    observation, info = env.reset(seed=0, options={"city": "Paris"})
    assert "Clue 1 of 6" in observation and info["guesses_left"] == 6
    observation, _, _, _, info = env.step("[London]")
    assert "Clue 2 of 6" in observation and info["clues_shown"] == 2
    observation, _, _, _, info = env.step("[pass]")
    assert "Clue 3 of 6" in observation and info["format_error"] is None
    _, reward, terminated, _, info = env.step("[paris]")
    assert terminated and info["success"] and reward == pytest.approx(0.8)
    hard = palaestra.make("palaestra/Game-CityClues-v0", difficulty="hard")
    hard.reset(seed=0)
    observation, total, done, info = _play(hard, ["[Atlantis]"] * 10)
    assert done and info["turn"] == 4 and total == 0.0 and "No guesses left" in observation


# -- Referential ------------------------------------------------------------------------------------
ITEMS = [
    Item("small", "plain", "red", "circle"),
    Item("small", "plain", "blue", "circle"),
    Item("large", "striped", "red", "square"),
]


def test_listener_counts_matched_values_and_fails_on_ties():
    assert attribute_listener("the tiny red round one", ITEMS) == 0
    assert attribute_listener("red", ITEMS) is None  # items 0 and 2 tie
    assert attribute_listener("big stripy squares", ITEMS) == 2
    assert attribute_listener("nothing useful", ITEMS) is None
    assert shortest_description(ITEMS, 0, ("size", "pattern", "colour", "shape")) == "small red"
    assert shortest_description(ITEMS, 1, ("size", "pattern", "colour", "shape")) == "blue"


def test_referential_word_limit_is_a_format_error_and_listener_is_pluggable():
    env = ReferentialEnv(difficulty="hard")
    observation, info = env.reset(seed=3)
    assert "<- TARGET" in observation and len(info["expert_action"].split()) == 2
    _, _, terminated, _, info = env.step("[one two three four five]")
    assert info["format_error"] and "limit" in info["format_error"] and not terminated
    target = info["target"]
    picks_target = ReferentialEnv(difficulty="hard", listener=lambda text, items: target)
    picks_target.reset(seed=3)
    assert picks_target.step("[anything]")[4]["success"]
    never_sure = ReferentialEnv(difficulty="hard", listener=lambda text, items: None)
    never_sure.reset(seed=3)
    _, reward, terminated, _, info = never_sure.step(info["expert_action"])
    assert terminated and not info["success"] and reward == 0.0


def test_referential_hard_needs_two_words():
    env = ReferentialEnv(difficulty="hard")
    for seed in range(10):
        _, info = env.reset(seed=seed)
        assert len(env.items) == 6
        single_words = {w for item in env.items for w in item.describe().split()}
        assert not any(attribute_listener(w, env.items) == info["target"] for w in single_words)
