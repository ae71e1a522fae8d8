"""The text-environment contract every palaestra env follows.

A palaestra env is a `gymnasium.Env[str, str]`: the action is the assistant's whole reply and the
observation is what the environment says next. `TextEnv` implements gymnasium's `reset`/`step` once
(seeding, turn counting, type checks, the standard `info` keys, rendering) and asks subclasses for two
hooks, `_reset` and `_step`, that only deal with the task itself.

Standard `info` keys (always present after `reset` and `step`):
    success (bool): the benchmark metric for the episode so far.
    format_error (str | None): why the last action could not be parsed, else None.
    task_id (str): a stable identifier of the task (same seed -> same task_id).
    turn (int): number of actions taken so far.
Optional keys: `expert_action` (a reply an expert would give now), `role` ("user" | "tool": the chat
role the rollout gives the observation).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["CurrentTask", "StepOutcome", "TextEnv", "TextSpace", "draw_index", "draw_task"]

T = TypeVar("T")

_SAMPLE_CHARSET = (
    string.ascii_letters + string.digits + string.punctuation + " \n\u00e9\u00fc\u03c0\u00b2\u221a"
)


class TextSpace(spaces.Text):
    """Any Python string of at most `max_length` characters.

    gymnasium's `spaces.Text` only admits characters of its charset (alphanumerics by default), which
    rejects ordinary prose, LaTeX and code. Membership here is any `str`; the charset is only used by
    `sample()`, which draws short printable strings (with a few non-ASCII characters) for env checkers
    and random agents.
    """

    def __init__(self, max_length: int = 1 << 20, *, sample_max_length: int = 64, seed: int | None = None):
        super().__init__(max_length=max_length, min_length=0, charset=_SAMPLE_CHARSET, seed=seed)
        self.sample_max_length = sample_max_length

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is not None or probability is not None:
            return super().sample(mask=mask, probability=probability)
        length = int(self.np_random.integers(0, self.sample_max_length + 1))
        chars = self.character_list
        return "".join(chars[i] for i in self.np_random.integers(0, len(chars), size=length))

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"


@dataclass(slots=True)
class StepOutcome:
    """What a `TextEnv._step` hook returns; `TextEnv.step` turns it into gymnasium's 5-tuple.

    Attributes:
        observation: what the environment says next.
        reward: reward for this action.
        terminated: the task ended (solved, failed for good, or out of attempts).
        success: whether the episode counts as solved so far.
        format_error: why the action could not be parsed, or None.
        info: extra task-specific info (merged into the standard keys).
        truncated: the env cut the episode short for its own reason (e.g. a game's move limit), on
            top of `max_turns`.
    """

    observation: str
    reward: float = 0.0
    terminated: bool = False
    success: bool = False
    format_error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False


class TextEnv(gym.Env[str, str]):
    """Base class for multi-turn text environments.

    Subclasses set `system_prompt` (in `__init__` or `_reset`) and implement:
        `_reset(options) -> (observation, info)`: draw a new task with `self.np_random`; info must hold
            `task_id`.
        `_step(action) -> StepOutcome`: judge one reply. Malformed replies must not raise: return an
            outcome with `format_error` set and an observation that explains the expected format.

    Args:
        max_turns: the episode is truncated after this many actions (gymnasium's `truncated`).
        render_mode: None or "ansi" (the transcript as text).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 (gym.Env's type)
    max_action_length: ClassVar[int] = 1 << 16
    observation_space: spaces.Space[Any]
    """A `TextSpace`, except in GUI mode, where the observation is a `spaces.Dict` of the text and a
    screenshot (`WebEnv`)."""

    def __init__(self, *, max_turns: int = 1, render_mode: str | None = None):
        if max_turns < 1:
            raise ValueError(f"max_turns={max_turns}, but an episode needs at least 1 turn")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode={render_mode!r}; supported: {self.metadata['render_modes']}")
        self.max_turns = max_turns
        self.render_mode = render_mode
        self.system_prompt: str = ""
        self.observation_space = TextSpace()
        self.action_space = TextSpace(max_length=self.max_action_length)
        self._turn = 0
        self._done = True
        self._success = False
        self._task_id = ""
        self._transcript: list[tuple[str, str]] = []

    # -- hooks -------------------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _step(self, action: str) -> StepOutcome:
        raise NotImplementedError

    # -- gymnasium API -----------------------------------------------------------------------------
    @property
    def turn(self) -> int:
        """Actions taken in the current episode (every `step` counts, unreadable replies too)."""
        return self._turn

    @property
    def rng(self) -> np.random.Generator:
        """The env's random generator (seeded by `reset(seed=...)`)."""
        return self.np_random

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        observation, info = self._reset(options)
        if "task_id" not in info:
            raise TypeError(f"{type(self).__name__}._reset must put 'task_id' in info")
        self._turn, self._done, self._success = 0, False, False
        self._task_id = str(info["task_id"])
        self._transcript = [("env", observation)]
        info = {"success": False, "format_error": None, "turn": 0, **info}
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError(f"{type(self).__name__}.step called on a finished episode; call reset() first")
        if isinstance(action, str) and len(action) <= self.max_action_length:
            outcome = self._step(action)
        else:
            outcome = self._unreadable(action)
        self._turn += 1
        self._success = self._success or outcome.success
        terminated = outcome.terminated
        truncated = not terminated and (outcome.truncated or self._turn >= self.max_turns)
        self._done = terminated or truncated
        if self.render_mode == "ansi":  # the transcript is only for render()
            self._transcript.append(("agent", action if isinstance(action, str) else repr(action)))
            self._transcript.append(("env", outcome.observation))
        info = outcome.info.copy()  # the standard keys win over the hook's
        info["success"] = self._success
        info["format_error"] = outcome.format_error
        info["task_id"] = self._task_id
        info["turn"] = self._turn
        return outcome.observation, float(outcome.reward), terminated, truncated, info

    def _unreadable(self, action: Any) -> StepOutcome:
        """The outcome of an action that is not text or is too long (the hooks never see it)."""
        if not isinstance(action, str):
            return StepOutcome(
                observation=f"Invalid reply: expected text, got {type(action).__name__}.",
                format_error=f"action must be str, got {type(action).__name__}",
            )
        return StepOutcome(
            observation=f"Your reply is too long ({len(action)} characters, limit {self.max_action_length}).",
            format_error=f"action longer than {self.max_action_length} characters",
        )

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"[{who}] {text}" for who, text in self._transcript)


def draw_index(count: int, options: dict[str, Any] | None, rng: np.random.Generator, owner: str) -> int:
    """The index of an episode's task among `count` fixed ones: `options["task_index"]`, or one drawn
    with the env's generator.

    Raises:
        ValueError: an option other than task_index, or an index out of range (`owner` names the env).
    """
    options = dict(options or {})
    index = options.pop("task_index", None)
    if options:
        raise ValueError(f"unknown reset options {sorted(options)}; {owner} accepts 'task_index'")
    if index is None:
        return int(rng.integers(count))
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ValueError(f"task_index={index!r}; expected an integer in [0, {count})")
    return index


def draw_task(tasks: Sequence[T], options: dict[str, Any] | None, rng: np.random.Generator, owner: str) -> T:
    """The task of an episode of an env with a fixed list of tasks (see `draw_index`)."""
    return tasks[draw_index(len(tasks), options, rng, owner)]


class CurrentTask(Generic[T]):
    """Mixin for an env that plays one task per episode: `_reset` sets `self._task`, `task` reads it."""

    _task: T | None = None

    @property
    def task(self) -> T:
        """The current episode's task (after `reset`)."""
        if self._task is None:
            raise RuntimeError("no task yet; call reset() first")
        return self._task
