"""Where a rubric travels: config entries, tasks, the task samplers (and their resume state), `task_env`."""

from __future__ import annotations

import pytest

import palaestra
from palaestra.config import ConfigError, load_config
from palaestra.rewards import RubricReward
from palaestra.rollout import Task
from palaestra.rollout.runner import task_env
from palaestra.trainers.core.sampler import TaskPoolSampler, TaskSampler, WeightedEnv
from tests.vowel_env import VowelEnv

SPEC = {"criteria": [{"kind": "contains", "text": "a"}]}


def test_task_env_wraps_the_env_in_its_rubric():
    palaestra.register_env("test/Vowel-v0", VowelEnv, override=True)
    assert not isinstance(task_env(Task("test/Vowel-v0", 0)), RubricReward)
    env = task_env(Task("test/Vowel-v0", 0, reward=SPEC), lambda env_id, **kw: VowelEnv(**kw))
    assert isinstance(env, RubricReward) and isinstance(env.unwrapped, VowelEnv)
    env.reset(seed=0)
    assert env.step("xyz")[1] == 0.0


def test_samplers_carry_the_rubric_through_their_resume_state():
    envs = [WeightedEnv("test/Vowel-v0", reward=SPEC)]
    assert all(t.reward == SPEC for t in TaskSampler(envs, seed=0).sample(3))
    pool = TaskPoolSampler(envs, range(4), seed=0)
    resumed = TaskPoolSampler([WeightedEnv("test/Vowel-v0")], range(4), seed=0)
    resumed.load_state_dict(pool.state_dict())
    assert resumed.sample(4) == pool.sample(4) and resumed.pool[0].reward == SPEC
    old = {
        "seed": 0,
        "drawn": 0,
        "pool": [["test/Vowel-v0", 1, {}, None]],
    }  # a checkpoint from before rubrics
    resumed.load_state_dict(old)
    assert resumed.pool == [Task("test/Vowel-v0", 1)]


def test_a_bad_rubric_in_a_config_is_one_line_naming_the_entry():
    reward = {"criteria": [{"kind": "python", "function": "tests.rewards.judges:missing"}]}
    with pytest.raises(ConfigError) as info:
        load_config(None, envs={"train": [{"id": "test/Vowel-v0", "reward": reward}]})
    (line,) = str(info.value).splitlines()[1:]
    assert line.startswith("  envs.train.0.reward.criteria.0:") and "has no 'missing'" in line
