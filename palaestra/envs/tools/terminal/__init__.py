"""The terminal env: a multi-turn bash shell in the code sandbox, bundled shell tasks judged by test scripts.

Importing this package registers the env ids (lazy entry points: the sandbox and the tasks load when
an env is first made):

    palaestra/Tool-Terminal-v0          every bundled task (files, text, python, build, data)
    palaestra/Tool-Terminal-v0-easy     the easy tasks only (also -medium, -hard)
"""

from __future__ import annotations

from palaestra.envs.registration import register_env

_ENTRY = "palaestra.envs.tools.terminal.env:TerminalEnv"
_MAX_TURNS = 24  # env.DEFAULT_MAX_TURNS, without importing the env here

register_env(
    "palaestra/Tool-Terminal-v0",
    _ENTRY,
    description="Shell tasks in the sandbox (files, text, a broken package, a build, CSV/JSON), judged by a test",
    family="Tool",
    max_turns=_MAX_TURNS,
    reward_range=(0.0, 1.0),
)
for _level in ("easy", "medium", "hard"):
    register_env(
        f"palaestra/Tool-Terminal-v0-{_level}",
        _ENTRY,
        description=f"The {_level} bundled terminal tasks only",
        family="Tool",
        max_turns=_MAX_TURNS,
        reward_range=(0.0, 1.0),
        kwargs={"difficulty": _level},
    )
