"""`RubricReward`: a gymnasium wrapper that scores each episode's end with a rubric.

It wraps any env (a local one, a served one, one a TRL rollout builds) and, on the step that ends the
episode (terminated or truncated by the env), replaces the reward by the rubric's score or adds the
score to it (`RewardSpec.mode`). The step's info gets `reward` (the rubric's record: total, per-criterion
scores, the failed gate, each judge's verdict with its prompt version and hash, and errors) and
`env_reward` (the env's own reward of that step).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym

from palaestra.rewards.judge import Judge
from palaestra.rewards.rubric import RewardContext, Rubric
from palaestra.rewards.spec import RewardSpec

__all__ = ["RubricReward", "with_reward"]


def _text(observation: Any) -> str:
    if isinstance(observation, dict):
        return str(observation.get("text", ""))
    return str(observation)


class RubricReward(gym.Wrapper):
    """Scores the end of each episode of `env` with a rubric.

    A rubric with judges or user functions marks `metadata["blocking_step"]`, so the rollout runs the
    env's steps in its thread pool, where a step may wait for a verdict.

    Args:
        env: the env.
        spec: the rubric (a `RewardSpec` or its dict form).
        judges: judges by criterion name (default: each criterion's shared judge).
    """

    def __init__(
        self, env: gym.Env, spec: RewardSpec | Mapping[str, Any], judges: Mapping[str, Judge] | None = None
    ):
        super().__init__(env)
        self.reward_spec = (
            spec if isinstance(spec, RewardSpec) else _validated(json.dumps(spec, sort_keys=True))
        )
        self.rubric = Rubric(self.reward_spec, judges)
        if self.reward_spec.judged:
            self.metadata = {**env.metadata, "blocking_step": True}
        self._task = ""
        self._return = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        self._task, self._return = _text(observation), 0.0
        return observation, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        if not (terminated or truncated):
            return observation, reward, terminated, truncated, info
        ctx = RewardContext(self._task, str(action), info, float(reward), self._return)
        result = self.rubric.score(ctx)
        total = result.total if self.reward_spec.mode == "replace" else float(reward) + result.total
        info = {**info, "reward": result.record(), "env_reward": float(reward)}
        return observation, total, terminated, truncated, info


@functools.lru_cache(maxsize=64)
def _validated(spec_json: str) -> RewardSpec:
    """A spec's dict form validated once per process (every episode's env is wrapped anew)."""
    return RewardSpec.model_validate_json(spec_json)


def with_reward(env: gym.Env, spec: RewardSpec | Mapping[str, Any] | None) -> gym.Env:
    """`env` wrapped in `RubricReward` when a spec is given, else `env` itself."""
    return env if spec is None else RubricReward(env, spec)
