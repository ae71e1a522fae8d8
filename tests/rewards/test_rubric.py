"""Rubrics: hand-computed weighted sums and gates, text checks, python criteria, and spec validation."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from palaestra.rewards import Judge, RewardContext, RewardSpec, Rubric
from tests.rewards.judges import ScriptedJudge


def _rubric(criteria, **spec):
    return Rubric(RewardSpec.model_validate({"criteria": criteria, **spec}))


def _ctx(reply="The answer is 42.", **kw):
    return RewardContext(task="What is 6*7?", reply=reply, **kw)


def test_weighted_sum_of_text_checks_by_hand():
    rubric = _rubric(
        [
            {"name": "number", "kind": "regex", "pattern": r"\b42\b", "weight": 0.5},
            {
                "name": "says answer",
                "kind": "contains",
                "text": "ANSWER",
                "case_sensitive": False,
                "weight": 0.25,
            },
            {"name": "exact", "kind": "exact", "text": "42", "weight": 2.0},
            {"name": "env", "kind": "env_reward", "weight": 3.0},
        ]
    )
    result = rubric.score(_ctx(env_reward=0.1))
    # 0.5 * 1 + 0.25 * 1 + 2.0 * 0 + 3.0 * 0.1
    assert result.total == pytest.approx(1.05)
    assert result.scores == {"number": 1.0, "says answer": 1.0, "exact": 0.0, "env": pytest.approx(0.1)}
    assert result.failed_gate is None
    assert rubric.score(_ctx(reply="  42\n")).total == pytest.approx(0.5 + 2.0)


def test_normalize_divides_by_the_sum_of_weights():
    rubric = _rubric(
        [
            {"name": "a", "kind": "contains", "text": "42", "weight": 3.0},
            {"name": "b", "kind": "contains", "text": "43", "weight": 1.0},
        ],
        normalize=True,
    )
    assert rubric.score(_ctx()).total == pytest.approx(0.75)


def test_a_failed_gate_zeroes_the_rest_and_skips_the_judge():
    judge = ScriptedJudge()
    spec = RewardSpec.model_validate(
        {
            "criteria": [
                {
                    "name": "quality",
                    "kind": "judge",
                    "weight": 1.0,
                    "judge": {"policy": "scripted:oracle", "rubric": "r", "cache": False},
                },
                {"name": "solved", "kind": "success", "gate": True, "weight": 0.0},
                {"name": "short", "kind": "regex", "pattern": "^.{0,40}$", "weight": 0.5},
            ]
        }
    )
    rubric = Rubric(spec, judges={"quality": Judge(judge)})
    failed = rubric.score(_ctx(info={"success": False}))
    assert failed.total == 0.0 and failed.failed_gate == "solved"
    assert failed.scores == {"quality": None, "solved": 0.0, "short": None}
    assert judge.prompts == []  # the gate is checked first; the judge is never asked
    passed = rubric.score(_ctx(info={"success": True}))
    # quality 7/10 * 1.0 + solved 1 * 0.0 + short 1 * 0.5
    assert passed.total == pytest.approx(1.2) and passed.failed_gate is None
    assert len(judge.prompts) == 1


def test_gate_threshold_and_env_return():
    rubric = _rubric(
        [
            {
                "name": "enough",
                "kind": "env_reward",
                "of": "return",
                "gate": True,
                "pass_at": 1.5,
                "weight": 1.0,
            },
            {"name": "bonus", "kind": "contains", "text": "42", "weight": 1.0},
        ]
    )
    assert rubric.score(_ctx(env_reward=1.0, env_return=1.4)).total == 0.0
    assert rubric.score(_ctx(env_reward=1.0, env_return=1.5)).total == pytest.approx(2.5)


def test_python_criterion_is_called_with_the_context():
    rubric = _rubric([{"kind": "python", "function": "tests.rewards.judges:reply_length", "weight": 2.0}])
    assert rubric.score(_ctx(reply="abcde")).total == pytest.approx(1.0)  # 2.0 * 5/10


@pytest.mark.parametrize(
    ("criterion", "message"),
    [
        ({"kind": "regex", "pattern": "(unclosed"}, "is not a regex"),
        ({"kind": "regex"}, "needs pattern"),
        ({"kind": "contains", "text": "x", "pattern": "x"}, "does not take pattern"),
        ({"kind": "python", "function": "tests.rewards.judges:nope"}, "has no 'nope'"),
        ({"kind": "python", "function": "no_such_module_xyz:f"}, "cannot import 'no_such_module_xyz'"),
        ({"kind": "judge", "judge": {"policy": "nobackend:x", "rubric": "r"}}, "cannot import 'nobackend'"),
        (
            {
                "kind": "judge",
                "judge": {"policy": "hf:smollm2-135m", "rubric": "r", "policy_options": {"bogus": 1}},
            },
            "does not take option(s) ['bogus']",
        ),
        ({"kind": "judge", "judge": {"policy": "openai:gpt-4o-mini", "rubric": "r"}}, "needs base_url"),
        (
            {
                "kind": "judge",
                "judge": {"policy": "scripted:oracle", "rubric": "r", "prompt": "no reply here"},
            },
            "no {reply} placeholder",
        ),
        ({"kind": "success", "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_criteria_are_one_clear_error(criterion, message):
    with pytest.raises(
        ValidationError,
        match=re.escape(message),
    ):
        RewardSpec.model_validate({"criteria": [criterion]})


def test_a_spec_survives_its_saved_form():
    spec = RewardSpec.model_validate(
        {
            "criteria": [
                {"kind": "regex", "pattern": "x", "gate": True},
                {"kind": "env_reward", "of": "return"},
            ]
        }
    )
    assert RewardSpec.model_validate(spec.model_dump()) == spec


def test_repeated_names_are_an_error():
    with pytest.raises(ValidationError, match="repeat"):
        RewardSpec.model_validate({"criteria": [{"kind": "success"}, {"kind": "success"}]})
