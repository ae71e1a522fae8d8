"""Environments: the text-env contract, the registry, and the built-in families.

Importing this package registers every built-in env (entry points are lazy "module:Class" strings, so
no family's dependencies are imported until an env is made).
"""

from __future__ import annotations

from palaestra.envs import adapters as _adapters  # noqa: F401  (textarena/*, reasoning_gym/* when installed)
from palaestra.envs import code as _code  # noqa: F401  (registers palaestra/Code-* envs)
from palaestra.envs import games as _games  # noqa: F401  (registers the game envs)
from palaestra.envs import math as _math  # noqa: F401  (registers palaestra/Math-* envs)
from palaestra.envs import tools as _tools  # noqa: F401  (registers palaestra/Tool-* envs)
from palaestra.envs import web as _web  # noqa: F401  (registers palaestra/Web-* envs)
from palaestra.envs.core import StepOutcome, TextEnv, TextSpace
from palaestra.envs.registration import (
    ENTRY_POINT_GROUP,
    EnvCard,
    EnvUnavailableError,
    UnknownEnvError,
    env_card,
    list_envs,
    load_plugins,
    make,
    register_env,
    resolve_id,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "EnvCard",
    "EnvUnavailableError",
    "StepOutcome",
    "TextEnv",
    "TextSpace",
    "UnknownEnvError",
    "env_card",
    "list_envs",
    "load_plugins",
    "make",
    "register_env",
    "resolve_id",
]
