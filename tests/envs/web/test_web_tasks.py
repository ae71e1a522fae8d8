"""Every web task family, in both modes: the expert solves it, a random agent mostly fails, bad replies
never raise, and a seed always gives the same page."""

from __future__ import annotations

import numpy as np
import pytest

from palaestra.envs.web.actions import random_action
from palaestra.envs.web.env import WebEnv
from palaestra.envs.web.tasks import TASKS

EXPERT_SEEDS = 20
RANDOM_EPISODES = 12
CASES = [(task, mode) for task in sorted(TASKS) for mode in ("text", "gui")]


def _text(observation) -> str:
    return observation if isinstance(observation, str) else observation["text"]


def _env(task: str, mode: str) -> WebEnv:
    return WebEnv(task, mode=mode, max_steps=TASKS[task].max_steps * (1 if mode == "text" else 2))


@pytest.mark.slow  # 20 episodes x 36 task/mode cases in a real Chromium (~12 min of worker time, busy box)
@pytest.mark.parametrize(("task", "mode"), CASES)
def test_expert_solves_every_seed_with_return_one(task, mode):
    env = _env(task, mode)
    try:
        for seed in range(EXPERT_SEEDS):
            observation, info = env.reset(seed=seed)
            assert info["progress"] == 0.0, "progress must start at 0 (the dense return is its gain)"
            total, done, steps = 0.0, False, []
            while not done:
                steps.append(info["expert_action"])
                observation, reward, terminated, truncated, info = env.step(info["expert_action"])
                assert info["format_error"] is None and info["action_error"] is None, (seed, steps, info)
                total += reward
                done = terminated or truncated
            assert info["success"], (
                f"{task}/{mode} seed {seed}: expert failed after {steps}\n{_text(observation)}"
            )
            assert total == pytest.approx(1.0), (seed, total)
    finally:
        env.close()


@pytest.mark.parametrize(("task", "mode"), CASES)
def test_expert_recovers_from_random_moves(task, mode):
    """The expert reads the live page: after a few random moves it still finishes any live episode."""
    limit = TASKS[task].max_steps * (1 if mode == "text" else 2)
    env, rng = WebEnv(task, mode=mode, max_steps=3 * limit + 4), np.random.default_rng(1)
    try:
        for seed in range(4):
            observation, info = env.reset(seed=500 + seed)
            done = False
            for _ in range(int(rng.integers(1, 5))):
                action = random_action(_text(observation), mode, rng, env.viewport)
                if action.startswith("stop"):
                    continue
                observation, _, terminated, truncated, info = env.step(action)
                if done := terminated or truncated:
                    break
            if done:
                continue  # a random move ended the task (e.g. a wrong click): nothing to recover
            while not done:
                observation, _, terminated, truncated, info = env.step(info["expert_action"])
                done = terminated or truncated
            assert info["success"], (
                f"{task}/{mode} seed {500 + seed}: expert did not recover\n{_text(observation)}"
            )
    finally:
        env.close()


@pytest.mark.slow  # 12 random episodes to the step limit x 36 cases in a real Chromium
@pytest.mark.parametrize(("task", "mode"), CASES)
def test_random_agent_mostly_fails(task, mode):
    env, rng = _env(task, mode), np.random.default_rng(0)
    wins = 0
    try:
        for seed in range(RANDOM_EPISODES):
            observation, info = env.reset(seed=1000 + seed)
            done = False
            while not done:
                action = random_action(_text(observation), mode, rng, env.viewport)
                observation, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            wins += bool(info["success"])
    finally:
        env.close()
    assert wins <= RANDOM_EPISODES // 3, f"{task}/{mode}: a random agent won {wins}/{RANDOM_EPISODES}"


BAD_REPLIES = [
    "",
    "I would click the button",
    "click [99999]",
    'type [1] "unterminated',
    "click(-5, 10000)",
    'press "NoSuchKey"',
    'key("NoSuchKey")',
    'select [2] "nothing"',
    "click [1]\x00",
    "x" * 70000,
]


@pytest.mark.parametrize(("task", "mode"), CASES)
def test_bad_replies_never_raise_and_keep_the_page(task, mode):
    """Unreadable, failing and too-long replies: format or action errors, the observation's type kept."""
    env = _env(task, mode)
    try:
        env.reset(seed=3)
        for reply in BAD_REPLIES:
            observation, reward, terminated, truncated, info = env.step(reply)
            assert info["format_error"] is not None or info["action_error"] is not None, (reply[:40], info)
            assert env.observation_space.contains(observation), (reply[:40], type(observation))
            assert reward == 0.0
            if terminated or truncated:
                env.reset(seed=3)
    finally:
        env.close()


@pytest.mark.parametrize(("task", "mode"), CASES)
def test_same_seed_same_page(task, mode):
    first, second = _env(task, mode), _env(task, mode)
    try:
        for seed in (0, 7):
            a, info_a = first.reset(seed=seed)
            b, info_b = second.reset(seed=seed)
            assert info_a["task_id"] == info_b["task_id"]
            assert _text(a) == _text(b)
            if mode == "gui":
                differing = (a["screenshot"] != b["screenshot"]).any(axis=-1).mean()
                assert differing <= 1e-3  # Chromium's text anti-aliasing may vary by a few pixels
        _, info_other = first.reset(seed=1)
        assert info_other["task_id"] != info_a["task_id"]
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("task", ["ClickButton", "ClickLink", "SearchOpen"])
def test_element_ids_do_not_give_the_answer_away(task):
    """Ids number the page in tree order: the expert's target must not get a telltale id (e.g. always [1])."""
    env = WebEnv(task)
    try:
        targets = {env.reset(seed=seed)[1]["expert_action"] for seed in range(10)}
    finally:
        env.close()
    assert len(targets) >= 4, targets
