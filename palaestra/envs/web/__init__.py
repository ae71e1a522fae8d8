"""Web and GUI environments: bundled MiniWoB-style tasks in a real Chromium driven by Playwright.

Importing this package registers two ids per task family (Playwright loads only when an env is made):

    palaestra/Web-<Task>-v0        text mode: accessibility tree with element ids, `click [12]`-style actions
    palaestra/Web-<Task>-v0-gui    GUI mode: screenshots, `click(x, y)`-style actions

The families are listed in `palaestra.envs.web.tasks.TASKS`; `palaestra envs list --family Web` shows them.
"""

from __future__ import annotations

from palaestra.envs.registration import register_env
from palaestra.envs.web.tasks import TASKS

_ENTRY = "palaestra.envs.web.env:WebEnv"
GUI_STEP_FACTOR = 2
"""GUI episodes get this many times the text-mode step limit (a field needs a click before typing)."""

for _task in TASKS.values():
    register_env(
        f"palaestra/Web-{_task.name}-v0",
        _ENTRY,
        description=f"Web (text): {_task.description}",
        family="Web",
        max_turns=_task.max_steps,
        reward_range=(0.0, 1.0),
        kwargs={"task": _task.name, "mode": "text"},
    )
    register_env(
        f"palaestra/Web-{_task.name}-v0-gui",
        _ENTRY,
        description=f"Web (GUI, screenshots): {_task.description}",
        family="Web",
        max_turns=_task.max_steps * GUI_STEP_FACTOR,
        reward_range=(0.0, 1.0),
        kwargs={"task": _task.name, "mode": "gui", "max_steps": _task.max_steps * GUI_STEP_FACTOR},
    )
