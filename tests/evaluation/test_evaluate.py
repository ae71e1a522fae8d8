"""Evaluation through the public API: the oracle solves every math env, a random agent does not,
and the embedded model scores on easy arithmetic."""

from __future__ import annotations

import pytest

import palaestra
from palaestra.agents import SamplingParams
from palaestra.agents.spec import make_policy
from palaestra.evaluation import evaluate
from palaestra.rollout import RolloutConfig

PROCEDURAL_MATH = [c.id for c in palaestra.list_envs("Math") if not c.required_kwargs]


@pytest.mark.parametrize("env_id", PROCEDURAL_MATH)
def test_oracle_solves_every_math_env(env_id):
    result = evaluate(make_policy("scripted:oracle"), env_id, episodes=20, seed=3)
    assert result.summary.success_rate == 1.0
    assert result.summary.reward_mean == 1.0 and result.summary.format_error_rate == 0.0


@pytest.mark.parametrize("env_id", ["palaestra/Math-Arith-v0", "palaestra/Math-ArithRetry-v0"])
def test_random_agent_scores_low(env_id):
    result = evaluate(make_policy("scripted:random", seed=0), env_id, episodes=50)
    assert result.summary.success_rate <= 0.1
    assert result.summary.error_rate == 0.0, "random text is a format error or a wrong answer, never a crash"


@pytest.mark.slow
def test_embedded_model_scores_on_easy_arithmetic(smollm2_policy):
    # 32 new tokens, as the quickstart's evaluation (the answer comes first); 24 problems
    config = RolloutConfig(sampling=SamplingParams(temperature=0.0, max_new_tokens=32))
    result = evaluate(
        smollm2_policy,
        "palaestra/Math-ArithEasy-v0",
        episodes=24,
        env_kwargs={"split": "test"},
        config=config,
    )
    low, high = result.summary.success_ci95
    assert 0.05 <= result.summary.success_rate <= 0.95, f"implausible score {result.summary.success_rate:.2f}"
    assert 0.0 < low <= result.summary.success_rate <= high < 1.0
    assert result.summary.generated_tokens_mean > 0
