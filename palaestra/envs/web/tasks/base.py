"""The task-family registry shared by every web task module."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TASKS", "TaskInstance", "WebTask", "pick", "web_task"]


@dataclass(frozen=True)
class TaskInstance:
    """One generated task.

    Attributes:
        instruction: what the agent is asked to do (shown in every observation).
        data: JSON-serializable data the page script renders (`window.TASK`).
    """

    instruction: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """A short stable hash of the task (same seed, same digest)."""
        blob = json.dumps([self.instruction, self.data], sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


@dataclass(frozen=True)
class WebTask:
    """A task family.

    Attributes:
        name: the env id's name part (`palaestra/Web-<name>-v0`).
        script: the page script: a bundled script's name in `static/tasks/` (without `.js`), or the path of
            a `.js` file of your own (for task families defined outside palaestra).
        description: one line for `palaestra envs list`.
        max_steps: default step limit of an episode.
        generate: draws one task from a seeded generator.
    """

    name: str
    script: str
    description: str
    max_steps: int
    generate: Callable[[np.random.Generator], TaskInstance]

    def script_source(self) -> str:
        """The page script's JavaScript source."""
        if self.script.endswith(".js"):
            return Path(self.script).read_text()
        return resources.files("palaestra.envs.web").joinpath(f"static/tasks/{self.script}.js").read_text()


TASKS: dict[str, WebTask] = {}
"""Every registered family by name."""


def web_task(
    name: str, *, script: str, description: str, max_steps: int
) -> Callable[[Callable[[np.random.Generator], TaskInstance]], Callable[[np.random.Generator], TaskInstance]]:
    """Register the decorated generator as the task family `name`."""

    def register(fn: Callable[[np.random.Generator], TaskInstance]) -> Callable[..., TaskInstance]:
        if name in TASKS:
            raise ValueError(f"web task {name!r} is registered twice")
        TASKS[name] = WebTask(name, script, description, max_steps, fn)
        return fn

    return register


def pick(rng: np.random.Generator, items: list[Any] | tuple[Any, ...], k: int | None = None) -> Any:
    """One item (k=None) or k distinct items of `items`, drawn with `rng`."""
    if k is None:
        return items[int(rng.integers(len(items)))]
    return [items[int(i)] for i in rng.choice(len(items), size=k, replace=False)]
