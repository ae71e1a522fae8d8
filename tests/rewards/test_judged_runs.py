"""Judged rewards in real runs: the embedded model as a judge, and a training config with a rubric."""

from __future__ import annotations

import pytest
import yaml

import palaestra
from palaestra.config import load_config
from palaestra.rewards import Judge, JudgeConfig, RewardContext, RewardSpec, Rubric, parse_score
from palaestra.trainers import make_trainer
from tests.vowel_env import VowelEnv


@pytest.mark.slow
def test_the_embedded_model_judges_replies(smollm2_policy, tmp_path):
    """A real model's verdicts: its greedy reply is recorded, read as a score or turned into the fallback
    with the error, and a parsed verdict is read back from the cache instead of judged again."""
    judge_config = {
        "policy": "hf:smollm2-135m",
        "rubric": "The reply names Paris as the capital of France.",
        "max_new_tokens": 16,
        "timeout_s": 600,
        "fallback": 0.125,
        "cache_dir": str(tmp_path),
    }
    spec = RewardSpec.model_validate(
        {"criteria": [{"name": "paris", "kind": "judge", "judge": judge_config}]}
    )
    judge = Judge(smollm2_policy, spec="hf:smollm2-135m")  # the session's model; not closed here
    rubric = Rubric(spec, judges={"paris": judge})
    config = JudgeConfig.model_validate(judge_config)
    for reply in ["The capital of France is Paris.", "I do not know."]:
        result = rubric.score(RewardContext(task="What is the capital of France?", reply=reply))
        verdict = result.verdicts["paris"]
        assert verdict.raw.strip(), "the judge model said nothing"
        assert verdict.judge == "hf:smollm2-135m" and verdict.prompt_hash == config.prompt_hash
        try:
            expected = parse_score(verdict.raw, config.scale)
        except ValueError:
            assert "no score" in str(verdict.error) or "outside" in str(verdict.error)
            assert result.total == 0.125
            again = judge.verdict(config, "What is the capital of France?", reply)
            assert not again.cached and again.raw == verdict.raw  # greedy: the same verdict again
        else:
            assert verdict.error is None and result.total == pytest.approx(expected)
            calls = judge.calls
            again = judge.verdict(config, "What is the capital of France?", reply)
            assert again.cached and judge.calls == calls and again.score == verdict.score


@pytest.mark.slow
def test_a_training_config_with_a_rubric_runs_a_step(tmp_path):
    palaestra.register_env("test/Vowel-v0", VowelEnv, override=True)
    from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer

    judge = {
        "policy": "tests.rewards.judges:judge_by_length",
        "rubric": "Replies of three words or more.",
        "prompt_version": "length-1",
        "cache_dir": str(tmp_path / "verdicts"),
    }
    reward = {
        "criteria": [
            {"name": "vowels", "kind": "env_reward", "weight": 1.0},
            {"name": "long", "kind": "judge", "weight": 0.5, "judge": judge},
        ]
    }
    cfg = load_config(
        None,
        run={"name": "judged", "output_dir": str(tmp_path), "steps": 1, "seed": 0},
        envs={
            "train": [{"id": "test/Vowel-v0", "reward": reward}],
            "eval": [{"id": "test/Vowel-v0", "episodes": 2, "reward": reward}],
        },
        rollout={"tasks_per_step": 2, "group_size": 2, "max_new_tokens": 8},
        eval={"before_training": False},
        logging={"tensorboard": False, "progress": False, "report": False},
    )
    tok = build_tiny_tokenizer()
    history = make_trainer(cfg, model=build_tiny_model(tok, seed=0), tokenizer=tok).train()["history"]
    assert len(history) == 1
    verdicts = list((tmp_path / "verdicts").rglob("*.json"))
    assert verdicts, "no episode was judged"
    saved = yaml.safe_load((tmp_path / "judged" / "config.yaml").read_text())
    saved_judge = saved["envs"]["train"][0]["reward"]["criteria"][1]["judge"]
    assert saved_judge["prompt_version"] == "length-1" and "{reply}" in saved_judge["prompt"]
