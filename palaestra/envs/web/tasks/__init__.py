"""The bundled web task families: each is a seeded Python generator plus a page script.

A family is registered with `@web_task(...)` on a function `generate(rng) -> TaskInstance`: the
function draws everything random about one task (labels, values, order, distractors, layout offsets)
from the env's seeded generator and returns the instruction shown to the agent and the JSON data the
page script `static/tasks/<script>.js` renders. The page script also holds the task's success check,
its dense progress signal and its scripted expert (see `static/runtime.js` for the contract).

Importing this package imports every family module, so `TASKS` is complete.
"""

from __future__ import annotations

from palaestra.envs.web.tasks import apps as _apps  # noqa: F401  (registers families)
from palaestra.envs.web.tasks import forms as _forms  # noqa: F401
from palaestra.envs.web.tasks import widgets as _widgets  # noqa: F401
from palaestra.envs.web.tasks.base import TASKS, TaskInstance, WebTask, web_task

__all__ = ["TASKS", "TaskInstance", "WebTask", "web_task"]
