"""The agentic algorithms end to end on a tiny model: 2-step smoke runs, ARPO buffer across resume."""

from __future__ import annotations

import math

import pytest

import palaestra
from palaestra import StepOutcome, TextEnv
from palaestra.config import load_config
from palaestra.trainers import make_trainer


class SparseVowelEnv(TextEnv):
    """Success only when over 60% of the reply's letters are vowels: a random tiny model rarely gets it."""

    def __init__(self, turns: int = 1):
        super().__init__(max_turns=turns)
        self.system_prompt = "Write letters."

    def _reset(self, options):
        n = int(self.np_random.integers(0, 4))
        return f"Task {n}: write.", {"task_id": str(n), "expert_action": "[aaaa]"}

    def _step(self, action: str) -> StepOutcome:
        letters = [c for c in action.lower() if c.isalpha()]
        won = sum(c in "aeiou" for c in letters) / max(1, len(letters)) > 0.6
        last = won or self._turn + 1 >= self.max_turns
        info = {"expert_action": "[aaaa]"}
        return StepOutcome(f"turn {self._turn}", reward=float(won), terminated=last, success=won, info=info)


@pytest.fixture(scope="module", autouse=True)
def _envs():
    palaestra.register_env("test/SparseVowel-v0", SparseVowelEnv, override=True)
    palaestra.register_env(
        "test/SparseVowelMulti-v0", SparseVowelEnv, kwargs={"turns": 3}, max_turns=3, override=True
    )


@pytest.fixture(scope="module")
def tiny_tok():
    from palaestra.agents.models import build_tiny_tokenizer

    return build_tiny_tokenizer()


def _config(tmp_path, algorithm, overrides=(), env="test/SparseVowel-v0"):
    return load_config(
        None,
        list(overrides),
        run={"name": "t", "output_dir": str(tmp_path), "steps": 2, "seed": 0},
        envs={"train": [{"id": env}], "eval": [{"id": env, "episodes": 2}]},
        rollout={"tasks_per_step": 2, "group_size": 4, "max_new_tokens": 8},
        algorithm=algorithm,
        optimizer={"lr": 1e-2},
        eval={"before_training": False},
        logging={"tensorboard": False, "progress": False},
        checkpoint={"every": 0},
    )


def _trainer(cfg, tok, seed=0):
    from palaestra.agents.models import build_tiny_model

    return make_trainer(cfg, model=build_tiny_model(tok, seed=seed), tokenizer=tok)


def _finite(metrics):
    return all(math.isfinite(v) for k, v in metrics.items() if k.startswith(("loss/", "update/grad")))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algorithm", "env"),
    [
        ({"name": "gigpo", "gamma": 0.95}, "test/SparseVowelMulti-v0"),
        (
            {"name": "gigpo", "similarity": 0.9, "episode_stats": "steps", "scale_by_std": False},
            "test/SparseVowelMulti-v0",
        ),
        ({"name": "gigpo", "step_rewards": "progress"}, "test/SparseVowelMulti-v0"),
        (
            {"name": "gigpo", "step_rewards": "progress", "progress_estimator": "model"},
            "test/SparseVowelMulti-v0",
        ),
        ({"name": "arpo"}, "test/SparseVowel-v0"),
        ({"name": "semi_online", "min_return_std": None}, "test/SparseVowelMulti-v0"),
        ({"name": "critique_grpo", "refine_when": "always"}, "test/SparseVowel-v0"),
        ({"name": "cgi", "keep": "all"}, "test/SparseVowelMulti-v0"),
        ({"name": "critique_grpo", "critic": "self", "placement": "append"}, "test/SparseVowel-v0"),
        (
            {"name": "semi_online", "patch_threshold": None, "reward_scheme": "code"},
            "test/SparseVowelMulti-v0",
        ),
        (
            {"name": "semi_online", "min_return_std": None, "patch": "on_policy_thought"},
            "test/SparseVowelMulti-v0",
        ),
    ],
)
def test_two_step_smoke_runs(tmp_path, tiny_tok, algorithm, env):
    out = _trainer(_config(tmp_path, algorithm, env=env), tiny_tok).train()
    history = out["history"]
    assert len(history) == 2 and _finite(history[-1])
    if algorithm["name"] == "semi_online":
        key = env.split("/")[-1]
        assert 0 <= out["after"][f"eval/{key}/sop_score"] <= 1 and f"eval/{key}/success" in out["after"]
        assert 0 <= history[-1]["semi_online/match_rate"] <= 1
        if algorithm.get("patch") == "on_policy_thought":
            assert history[-1]["semi_online/patches_mean"] > 0  # a random policy misses: thoughts written
    if algorithm.get("step_rewards") == "progress":
        assert math.isfinite(history[-1]["progress/mse"])
    if algorithm["name"] == "cgi":
        assert history[0]["cgi/sft_rows"] > 0 and "loss/nll" in history[0]
    if algorithm["name"] == "critique_grpo":
        assert history[0]["critique/refined_groups"] >= 1
        appended = history[0]["critique/refined_groups"] if algorithm.get("placement") == "append" else 0
        assert history[0]["rollout/episodes"] == 8 + appended


@pytest.mark.slow
def test_semi_online_trains_on_offline_demos(tmp_path, tiny_tok):
    from palaestra.rollout.demos import collect_demos
    from palaestra.rollout.storage import save_trajectories

    demos = collect_demos("test/SparseVowelMulti-v0", episodes=3).trajectories
    path = save_trajectories(demos, tmp_path / "demos.parquet")
    algo = {"name": "semi_online", "demos": str(path), "min_return_std": None}
    cfg = _config(tmp_path, algo, ["eval.before_training=false"], env="test/SparseVowelMulti-v0")
    trainer = _trainer(cfg, tiny_tok)
    assert {t.env_id for t in trainer.sampler.sample(3)} == {"offline-demo"}
    history = trainer.train()["history"]
    assert _finite(history[-1]) and history[-1]["rollout/episodes"] >= 4


@pytest.mark.slow
def test_arpo_buffer_survives_checkpoint_and_resume(tmp_path, tiny_tok):
    algo = {"name": "arpo", "replay_signal": "reward", "success_threshold": -1.0}
    cfg = _config(tmp_path, algo, ["run.steps=2", "checkpoint.every=1", "rollout.task_pool=2"])
    first = _trainer(cfg, tiny_tok)
    first.train()
    assert len(first.buffer) > 0  # threshold -1: every rollout is buffered
    saved = first.buffer.state_dict()
    again = _trainer(cfg, tiny_tok, seed=1)
    assert len(again.buffer) == 0 and again.resume()
    assert again.buffer.state_dict() == saved
    assert again.sampler.state_dict() == first.sampler.state_dict()


def test_arpo_filters_the_pool_to_tasks_the_policy_solves(tmp_path, tiny_tok):
    algo = {
        "name": "arpo",
        "filter_tasks": True,
        "filter_trials": 2,
        "replay_signal": "reward",
    }
    trainer = _trainer(_config(tmp_path, algo, ["run.steps=1", "rollout.task_pool=3"]), tiny_tok)
    history = trainer.train()["history"]
    assert history[0]["sampling/pool_tasks"] == 3
    assert 0 <= history[0]["sampling/valuable_tasks"] <= 3


@pytest.mark.parametrize("name", ["gigpo", "arpo", "semi_online", "critique_grpo", "cgi"])
def test_ready_configs_load_and_select_their_algorithm(name):
    from pathlib import Path

    path = Path(__file__).parents[2] / "configs" / f"{name.replace('_', '-')}.yaml"
    assert path.exists(), f"every algorithm ships a ready config: {path} is missing"
    assert load_config(path).algorithm.name == name


def test_unknown_algorithm_keys_name_the_algorithms_own_keys():
    from palaestra.config import ConfigError

    with pytest.raises(ConfigError, match=r"allowed for gigpo: .*step_weight"):
        load_config(None, [], envs={"train": [{"id": "x"}]}, algorithm={"name": "gigpo", "omega": 1})
    with pytest.raises(ConfigError, match="critique_grpo"):
        load_config(None, [], envs={"train": [{"id": "x"}]}, algorithm={"name": "ppo"})
