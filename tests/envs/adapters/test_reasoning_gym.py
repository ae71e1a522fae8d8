"""reasoning-gym adapter: math-style envs judged by each dataset's own scorer."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

pytest.importorskip("reasoning_gym", reason="needs reasoning-gym: pip install 'palaestra[reasoning-gym]'")

import palaestra
import palaestra.envs.adapters  # registers the adapter ids
from palaestra.agents.spec import make_policy
from palaestra.cli import app
from palaestra.envs.adapters.reasoning_gym import extract_answer, scan_datasets
from palaestra.evaluation import evaluate

ARITH = "reasoning_gym/basic_arithmetic"


def test_every_dataset_is_registered():
    from reasoning_gym.factory import DATASETS

    assert scan_datasets() == sorted(DATASETS)
    ids = {card.id for card in palaestra.list_envs("ReasoningGym")}
    assert ids == {f"reasoning_gym/{name}" for name in DATASETS}


def test_oracle_scores_one():
    result = evaluate(make_policy("scripted:oracle"), ARITH, episodes=10, env_kwargs={"size": 50, "seed": 1})
    assert result.summary.success_rate == 1.0 and result.summary.reward_mean == 1.0


def test_wrong_answer_scores_zero_and_missing_tags_are_a_format_error():
    env = palaestra.make(ARITH, size=20, seed=3)
    question, info = env.reset(seed=0)
    assert question.startswith("Calculate") and info["expert_action"].startswith("<answer>")
    assert "<answer>" in env.unwrapped.system_prompt
    _, reward, terminated, _, info = env.step("<answer>not a number</answer>")
    assert reward == 0.0 and terminated and not info["success"] and info["format_error"] is None
    env.reset(seed=0)
    gold = extract_answer(info["expert_action"])
    observation, reward, terminated, _, info = env.step(f"The answer is {gold}.")
    assert reward == 0.0 and terminated and "no <answer>" in info["format_error"]
    assert "<answer>42</answer>" in observation


def test_task_is_drawn_by_the_reset_seed_or_the_task_index():
    env = palaestra.make(ARITH, size=30, seed=0)
    assert env.reset(seed=4) == env.reset(seed=4)
    _, info = env.reset(seed=0, options={"task_index": 7})
    assert info["task_index"] == 7 and info["task_id"] == "basic_arithmetic-0-7"
    with pytest.raises(ValueError, match="task_index"):
        env.reset(options={"task_index": 30})


def test_retry_mode_gives_feedback_and_decays_the_reward():
    env = palaestra.make(ARITH, mode="retry", max_attempts=3, reward_decay=0.5)
    _, info = env.reset(seed=1)
    expert = info["expert_action"]
    assert "try again" in env.unwrapped.system_prompt
    observation, reward, terminated, _, info = env.step("<answer>0.123</answer>")
    assert (
        not terminated and reward == 0.0 and "incorrect" in observation and "2 attempts left" in observation
    )
    assert extract_answer(expert) not in observation  # the gold answer is never revealed
    observation, reward, terminated, _, info = env.step("I give up")
    assert not terminated and info["format_error"] and "1 attempt left" in observation
    observation, reward, terminated, _, info = env.step(expert)
    assert terminated and info["success"] and reward == 0.25 and info["attempt"] == 3


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="mode="):
        palaestra.make(ARITH, mode="forever")
    with pytest.raises(TypeError, match="colour"):
        palaestra.make(ARITH, config={"colour": "blue"})
    with pytest.raises(palaestra.UnknownEnvError, match=ARITH):
        palaestra.make("reasoning_gym/basic_arithmetik")


def test_envs_list_shows_reasoning_gym_ids():
    result = CliRunner().invoke(app, ["envs", "list", "--family", "ReasoningGym"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert ARITH in result.output and "reasoning_gym/chain_sum" in result.output


def test_composite_needs_its_datasets_named():
    card = palaestra.env_card("reasoning_gym/composite")
    assert card.required_kwargs == ("config",) and "'datasets'" in card.description
    with pytest.raises(TypeError, match="config="):
        palaestra.make(card.id)
    env = palaestra.make(card.id, config={"datasets": [{"name": "chain_sum"}, {"name": ARITH.split("/")[1]}]})
    question, info = env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(info["expert_action"])
    assert question and reward == 1.0 and terminated
    with pytest.raises(ValueError, match="datasets to mix"):
        palaestra.make(card.id, config={"datasets": []})
    with pytest.raises(ValueError, match="'name'"):
        palaestra.make(card.id, config={"datasets": [{"dataset": "chain_sum"}]})
