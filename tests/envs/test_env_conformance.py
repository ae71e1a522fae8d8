"""Every registered env: `palaestra envs check` (gymnasium's env checker, seeded determinism, the info keys,
rewards, turn limits, malformed replies, the expert), and both `make`s.

The ids come from `palaestra.list_envs()` when the tests are collected, so new families (and installed
plugins) are covered automatically. An env with `required_kwargs` needs an entry in `REQUIRED_KWARGS`
below; the test fails loudly if one is missing.

"Listed means working": every listed id, adapters' included, plays random replies without raising, and
every registered id that is not listed raises `EnvUnavailableError` with its reason when made.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import palaestra
from palaestra.envs.checker import run_checks
from palaestra.envs.web.browser import DEBIAN_CHROMIUM


def _gsm8k_file(tmp: Path) -> dict[str, Any]:
    rows = [
        {
            "question": f"Ann has {n} pens and buys {n} more. How many pens?",
            "answer": f"{n}+{n}={2 * n}\n#### {2 * n}",
        }
        for n in range(1, 21)
    ]
    path = tmp / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"path": str(path)}


def _math_file(tmp: Path) -> dict[str, Any]:
    rows = [
        {
            "problem": f"Compute $\\frac{{{n}}}{{2}} + \\frac{{1}}{{2}}$.",
            "solution": f"$\\boxed{{{(n + 1) / 2:g}}}$",
        }
        for n in range(1, 21)
    ]
    path = tmp / "math.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"path": str(path)}


def _jsonl(tmp: Path, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    path = tmp / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"path": str(path)}


def _mbpp_file(tmp: Path) -> dict[str, Any]:
    rows = [
        {
            "task_id": n,
            "text": f"Write a function to add {n} to a number.",
            "code": f"def add_{n}(x):\n    return x + {n}",
            "test_list": [f"assert add_{n}(1) == {n + 1}", f"assert add_{n}(-{n}) == 0"],
        }
        for n in range(1, 21)
    ]
    return _jsonl(tmp, "mbpp.jsonl", rows)


def _humaneval_file(tmp: Path) -> dict[str, Any]:
    rows = [
        {
            "task_id": f"HumanEval/{n}",
            "prompt": f'def times_{n}(x: int) -> int:\n    """Return x times {n}."""\n',
            "canonical_solution": f"    return x * {n}\n",
            "test": f"def check(candidate):\n    assert candidate(2) == {2 * n}\n    assert candidate(0) == 0\n",
            "entry_point": f"times_{n}",
        }
        for n in range(1, 21)
    ]
    return _jsonl(tmp, "humaneval.jsonl", rows)


def _apps_file(tmp: Path) -> dict[str, Any]:
    rows = [
        {
            "question": f"Read an integer and print it plus {n}.",
            "solutions": json.dumps([f"print(int(input()) + {n})"]),
            "input_output": json.dumps({"inputs": ["1\n", "5\n"], "outputs": [f"{1 + n}\n", f"{5 + n}\n"]}),
            "difficulty": "introductory",
        }
        for n in range(1, 21)
    ]
    return _jsonl(tmp, "apps.jsonl", rows)


REQUIRED_KWARGS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "palaestra/Math-GSM8K-v0": _gsm8k_file,
    "palaestra/Math-MATH-v0": _math_file,
    "palaestra/Code-MBPP-v0": _mbpp_file,
    "palaestra/Code-HumanEval-v0": _humaneval_file,
    "palaestra/Code-APPS-v0": _apps_file,
    "reasoning_gym/composite": lambda tmp: {"config": {"datasets": [{"name": "chain_sum", "weight": 1.0}]}},
}
"""Env id -> function(tmp_path) -> the kwargs its `required_kwargs` need."""

ADAPTER_SAMPLE = {
    "textarena/GuessTheNumber-v0",
    "textarena/TowerOfHanoi-v0",
    "textarena/Minesweeper-v0-small",
    "textarena/TicTacToe-v0",
    "textarena/ConnectFour-v0",
    "textarena/KuhnPoker-v0",
    "reasoning_gym/basic_arithmetic",
    "reasoning_gym/chain_sum",
    "reasoning_gym/ab",
}
"""Adapters register hundreds of ids (every TextArena game, every reasoning-gym dataset); a sample
of them is checked here, their own tests cover the adapters."""

ENV_IDS = [
    card.id
    for card in palaestra.list_envs()
    if card.family not in ("TextArena", "ReasoningGym") or card.id in ADAPTER_SAMPLE
]


def _kwargs(env_id: str, tmp_path: Path) -> dict[str, Any]:
    card = palaestra.env_card(env_id)
    if card.family == "Code" and shutil.which("bwrap") is None:
        pytest.skip(
            "code envs run programs in the sandbox, which needs bubblewrap (apt-get install bubblewrap)"
        )
    if card.family == "Web" and not (os.path.exists(DEBIAN_CHROMIUM) or shutil.which("chromium")):
        pytest.skip("web envs need a Chromium (apt-get install chromium)")
    needed = [k for k in card.required_kwargs if k not in card.kwargs]
    if not needed:
        return {}
    if env_id not in REQUIRED_KWARGS:
        pytest.fail(
            f"{env_id} requires {needed}; add an entry to REQUIRED_KWARGS in {Path(__file__).name}",
            pytrace=False,
        )
    kwargs = REQUIRED_KWARGS[env_id](tmp_path)
    missing = [k for k in needed if k not in kwargs]
    assert not missing, f"REQUIRED_KWARGS[{env_id!r}] lacks {missing}"
    return kwargs


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_passes_the_checker(env_id, tmp_path):
    """`palaestra envs check`'s checks, every one: gymnasium's checker (no warning tolerated), text
    spaces, seeded determinism, the standard info keys, reward range, episode length, format errors on
    malformed replies, and the expert (where the env has one) solving its tasks."""
    report = run_checks(env_id, _kwargs(env_id, tmp_path))
    assert report.ok, str(report)
    assert {f.check for f in report.findings} >= {
        "gymnasium",
        "text spaces",
        "determinism",
        "info keys",
        "reward range",
        "episode length",
        "format errors",
        "expert",
    }


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_make_works_too(env_id, tmp_path):
    env = gym.make(env_id, **_kwargs(env_id, tmp_path))
    observation, info = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    text = observation["text"] if isinstance(observation, dict) else observation  # GUI envs add a screenshot
    assert isinstance(text, str)
    result = env.step(info.get("expert_action", ""))
    assert len(result) == 5
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_id_names_close_matches(env_id):
    namespace, _, name = env_id.rpartition("/")
    typo = f"{namespace}/{name[:-4]}x{name[-4:]}" if namespace else f"{name[:-4]}x{name[-4:]}"
    with pytest.raises(palaestra.UnknownEnvError) as err:
        palaestra.make(typo)
    assert env_id in str(err.value) and "Did you mean" in str(err.value)


# -- listed means working ------------------------------------------------------------------------------
RANDOM_REPLIES = [
    "",
    "x" * 70_000,  # longer than any env reads (TextEnv.max_action_length)
    "y" * 3_000,
    "@@##!! ~~ \x00 \u00e9\u221a garbage ]][[",
    "[0]",
    "[1]",
    "e2e4",
    "[e2e4]",
    "A",
    "42",
    "<answer>3</answer>",
    "click [1]",
]
"""The random player's replies: empty, too long, garbage, and plausible moves of many envs."""
RANDOM_STEPS = 20
SLOW_TO_PLAY = {
    "textarena/Sokoban-v0-medium",
    "textarena/Sudoku-v0-hard",
    "textarena/RushHour-v0",
    "textarena/SettlersOfCatan-v0",
}
"""Played by the slow test only: puzzle generators whose reset takes seconds on some seeds, and
SettlersOfCatan, whose three scripted players try their moves on copies of a large board."""
LISTED = [card.id for card in palaestra.list_envs()]
UNAVAILABLE = [card.id for card in palaestra.list_envs(include_unavailable=True) if card.unavailable]


def _play_random(env_id: str, tmp_path: Path) -> None:
    """An episode of random replies, cut at RANDOM_STEPS: nothing raises, the observations keep their
    type and stay in the observation space, rewards are finite floats."""
    env = palaestra.make(env_id, **_kwargs(env_id, tmp_path))
    rng = np.random.default_rng(0)
    try:
        first, _ = env.reset(seed=0)
        assert env.observation_space.contains(first), type(first)
        for _ in range(RANDOM_STEPS):
            reply = RANDOM_REPLIES[int(rng.integers(len(RANDOM_REPLIES)))]
            observation, reward, terminated, truncated, _ = env.step(reply)
            assert type(observation) is type(first), (reply[:20], type(observation), type(first))
            assert env.observation_space.contains(observation), reply[:20]
            assert type(reward) is float and math.isfinite(reward), (reply[:20], reward)
            if terminated or truncated:
                break
    finally:
        env.close()


@pytest.mark.parametrize("env_id", [i for i in LISTED if i not in SLOW_TO_PLAY])
def test_every_listed_env_plays_random_replies(env_id, tmp_path):
    _play_random(env_id, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(SLOW_TO_PLAY & set(LISTED)))
def test_every_slow_listed_env_plays_random_replies(env_id, tmp_path):
    _play_random(env_id, tmp_path)


@pytest.mark.parametrize("env_id", UNAVAILABLE or [pytest.param("", marks=pytest.mark.skip("none here"))])
def test_unlisted_envs_raise_one_line_with_the_reason(env_id):
    card = palaestra.env_card(env_id)
    with pytest.raises(palaestra.EnvUnavailableError) as err:
        palaestra.make(env_id, **{k: None for k in card.required_kwargs})
    assert str(err.value) == f"{env_id} cannot run here: {card.unavailable}"
    assert "\n" not in str(err.value)
