"""palaestra: train and evaluate LLM agents with multi-turn reinforcement learning.

>>> import palaestra
>>> env = palaestra.make("palaestra/Math-Arith-v0")
>>> obs, info = env.reset(seed=0)
"""

from __future__ import annotations

from palaestra.envs import (
    EnvCard,
    EnvUnavailableError,
    StepOutcome,
    TextEnv,
    TextSpace,
    UnknownEnvError,
    env_card,
    list_envs,
    make,
    register_env,
)

__version__ = "0.1.0"

__all__ = [
    "EnvCard",
    "EnvUnavailableError",
    "StepOutcome",
    "TextEnv",
    "TextSpace",
    "UnknownEnvError",
    "__version__",
    "env_card",
    "list_envs",
    "make",
    "register_env",
]
