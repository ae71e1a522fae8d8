"""The LLM judge with scripted judges: score parsing, verdict records, the on-disk cache, failures, and
the reward wrapper in a rollout."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import pytest

import palaestra
from palaestra.agents.scripted import OraclePolicy
from palaestra.rewards import Judge, JudgeConfig, RubricReward, parse_score, verdict_key
from palaestra.rollout import RolloutConfig, Task, rollout
from tests.rewards.judges import HangingJudge, RaisingJudge, ScriptedJudge
from tests.vowel_env import VowelEnv


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Good answer.\nScore: 7/10", 0.7),
        ("**Score:** 8", 0.8),
        ('{"reason": "fine", "score": 9}', 0.9),
        ("I would give it 3 out of 5.", 0.6),
        ("Score = 2/4 then later Score: 5/10", 0.5),
        ("10", 1.0),
        ("  4. ", 0.4),
    ],
)
def test_parse_score_reads_common_verdict_forms(text, score):
    assert parse_score(text, 10) == pytest.approx(score)


@pytest.mark.parametrize("text", ["", "The reply is good.", "Score: 12/10", '{"score": "high"}', "Score: -1"])
def test_parse_score_rejects_what_is_not_a_score(text):
    with pytest.raises(ValueError, match="score"):
        parse_score(text, 10)


def _config(tmp_path, **kw):
    base = {
        "policy": "tests.rewards.judges:judge_by_length",
        "rubric": "Long answers.",
        "cache_dir": str(tmp_path),
    }
    return JudgeConfig.model_validate({**base, **kw})


def test_verdict_records_version_hash_and_the_prompt_it_filled(tmp_path):
    policy = ScriptedJudge(lambda prompt: "Reasonable. Score: 6/10")
    config = _config(tmp_path, prompt_version="grader-2", rubric="Be {exact}.")
    verdict = Judge(policy).verdict(config, task="Say hi.", reply="hi there")
    assert verdict.score == pytest.approx(0.6) and verdict.error is None and not verdict.cached
    assert verdict.version == "grader-2" and verdict.prompt_hash == config.prompt_hash
    assert verdict.key == verdict_key(config, "Say hi.", "hi there")
    (prompt,) = policy.prompts
    assert "Say hi." in prompt and "hi there" in prompt and "Be {exact}." in prompt and "N/10" in prompt


def test_verdicts_are_cached_by_content(tmp_path):
    policy = ScriptedJudge()
    config = _config(tmp_path)
    first = Judge(policy).verdict(config, "task", "reply")
    again = Judge(policy).verdict(config, "task", "reply")  # a new judge (a resumed run): read from disk
    assert len(policy.prompts) == 1
    assert again.cached and again.score == first.score and again.key == first.key
    saved = json.loads((tmp_path / first.key[:2] / f"{first.key}.json").read_text())
    assert saved["score"] == first.score and saved["version"] == "v1"

    Judge(policy).verdict(config, "task", "another reply")
    Judge(policy).verdict(_config(tmp_path, prompt="Rate {reply} out of {scale}."), "task", "reply")
    Judge(policy).verdict(_config(tmp_path, rubric="Short answers."), "task", "reply")
    Judge(policy).verdict(_config(tmp_path, temperature=0.7), "task", "reply")
    assert len(policy.prompts) == 5  # a changed reply, prompt, rubric or sampling is a miss

    Judge(policy).verdict(_config(tmp_path, cache=False), "task", "reply")
    Judge(policy).verdict(_config(tmp_path, cache=False), "task", "reply")
    assert len(policy.prompts) == 7


def test_concurrent_episodes_with_the_same_reply_are_judged_once(tmp_path):
    policy = ScriptedJudge()
    judge, config = Judge(policy), _config(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda _: judge.verdict(config, "task", "same reply"), range(4)))
    assert len(policy.prompts) == 1 and sum(not v.cached for v in verdicts) == 1
    assert {v.score for v in verdicts} == {0.7}


@pytest.mark.parametrize(
    ("judge", "config", "error"),
    [
        (RaisingJudge(), {}, "judge server refused the connection"),
        (HangingJudge(), {"timeout_s": 0.2}, "judge timed out after 0.2s"),
        (ScriptedJudge(lambda prompt: "Looks fine to me."), {}, "no score in the judge's reply"),
    ],
)
def test_a_failing_judge_gives_the_fallback_and_a_recorded_error(tmp_path, judge, config, error):
    config = _config(tmp_path, fallback=0.25, **config)
    verdict = Judge(judge).verdict(config, "task", "reply")
    assert verdict.score == 0.25 and error in str(verdict.error)
    assert not list(tmp_path.rglob("*.json"))  # failures are not cached: a later run asks again


def test_a_judge_factory_that_returns_no_policy_is_an_error_verdict(tmp_path):
    config = _config(tmp_path, policy="tests.rewards.judges:not_a_policy")
    verdict = Judge(spec=config.policy).verdict(config, "task", "reply")
    assert verdict.score == 0.0 and "not a Policy" in str(verdict.error)


def _judged_spec(tmp_path, **judge):
    return {
        "criteria": [
            {"name": "vowels", "kind": "env_reward", "weight": 0.5},
            {"name": "long", "kind": "judge", "judge": {**_config(tmp_path).model_dump(), **judge}},
        ]
    }


def test_wrapper_replaces_the_final_reward_and_records_the_verdict(tmp_path):
    env = RubricReward(VowelEnv(), _judged_spec(tmp_path))
    assert env.metadata["blocking_step"] is True
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("aei ou xyz")
    # vowels: 5 of 8 letters * 0.5 + long: 3 words = 10/10
    assert terminated and reward == pytest.approx(0.5 * 5 / 8 + 1.0)
    assert info["env_reward"] == pytest.approx(5 / 8)
    assert info["reward"]["scores"] == {"vowels": pytest.approx(5 / 8), "long": 1.0}
    assert info["reward"]["verdicts"]["long"]["version"] == "v1" and info["reward"]["errors"] == {}


def test_wrapper_add_mode_and_intermediate_steps_untouched(tmp_path):
    spec = {"criteria": [{"kind": "contains", "text": "a"}], "mode": "add"}
    env = RubricReward(VowelEnv(turns=2), spec)
    assert not env.metadata.get("blocking_step")
    env.reset(seed=0)
    _, first, terminated, _, info = env.step("bcd")
    assert not terminated and first == 0.0 and "reward" not in info
    _, last, terminated, _, info = env.step("ab")
    assert terminated and last == pytest.approx(0.5 + 1.0)


def test_rollout_with_a_judged_reward_records_errors_without_failing(tmp_path):
    """A rubric on `Task.reward`: the rollout wraps the env; a judge that times out gives the fallback."""
    palaestra.register_env("test/Vowel-v0", VowelEnv, override=True)
    spec = _judged_spec(tmp_path, policy="tests.rewards.judges:judge_by_length")
    spec["criteria"].append(
        {
            "name": "slow",
            "kind": "judge",
            "weight": 2.0,
            "judge": {
                **_config(tmp_path).model_dump(),
                "timeout_s": 0.2,
                "fallback": 0.5,
                "policy": "tests.rewards.test_judge:_hanging",
            },
        }
    )
    tasks = [Task("test/Vowel-v0", seed, reward=spec) for seed in range(2)]
    trajectories = rollout(_EchoPolicy(), tasks, RolloutConfig(env_executor="auto"))
    for traj in trajectories:
        assert traj.error is None
        (turn,) = traj.turns
        assert turn.info["reward"]["errors"] == {"slow": "judge timed out after 0.2s"}
        assert turn.reward == pytest.approx(0.5 * turn.info["env_reward"] + 1.0 + 2.0 * 0.5)


def _hanging() -> HangingJudge:
    return HangingJudge()


class _EchoPolicy(OraclePolicy):
    name = "scripted:echo"

    async def generate(self, requests):
        return [self._generation("a b c") for _ in requests]


def test_any_gymnasium_env_can_be_wrapped():
    env = RubricReward(gym.make("CartPole-v1"), {"criteria": [{"kind": "env_reward", "of": "return"}]})
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(0)
        steps, done = steps + 1, terminated or truncated
    assert steps > 1 and reward == pytest.approx(
        steps
    )  # CartPole pays 1 a step: the final reward is the return
    assert info["reward"]["scores"] == {"env_reward": pytest.approx(steps)}
