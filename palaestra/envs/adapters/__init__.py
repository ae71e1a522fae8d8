"""Adapters: third-party env suites as palaestra envs, when their optional extra is installed.

    textarena/<TextArena id>     TextArena's games (`pip install 'palaestra[textarena]'`), family TextArena
    reasoning_gym/<dataset>      reasoning-gym's datasets (`pip install 'palaestra[reasoning-gym]'`),
                                 family ReasoningGym

Importing this package registers the ids of the suites that are installed and nothing else. It never
imports textarena or reasoning_gym (seconds each): the ids come from reading the installed packages'
registry sources, and the packages are imported by the lazy entry points when an env is made.
"""

from __future__ import annotations

from palaestra.envs.adapters import reasoning_gym, textarena

__all__ = ["reasoning_gym", "register_adapters", "textarena"]


def register_adapters() -> dict[str, int]:
    """Register the installed suites' ids (again: only the new ones); the count per suite."""
    return {"textarena": textarena.register_envs(), "reasoning_gym": reasoning_gym.register_envs()}


register_adapters()
