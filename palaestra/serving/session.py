"""One session of `palaestra serve`: an OpenEnv `Environment` that holds one palaestra env.

openenv-core's server builds one `Environment` per WebSocket connection (a session) with a factory
that takes no arguments, so the env id comes with `reset`: `SessionEnv` makes the palaestra env on
the first reset (and again when a reset names another id or other kwargs) and closes it when the
session ends. Each session owns its env alone: browser context, sandbox and subprocesses go with it.
"""

from __future__ import annotations

import difflib
import json
import uuid
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import EnvironmentMetadata, State

from palaestra.envs.registration import UnknownEnvError, make, resolve_id
from palaestra.envs.remote.protocol import SERVER_NAME, TextAction, TextObservation, json_safe

__all__ = ["ServedIds", "SessionClosedError", "SessionEnv"]


class SessionClosedError(RuntimeError):
    """A call reached a session the server already closed (idle past the timeout)."""


class ServedIds:
    """The env ids one server serves, resolved once at start.

    A client names one of them (its full id, its short palaestra id, or the id as the server was
    started with it); the server never resolves, and so never imports, anything else a client names.

    Args:
        env_ids: ids as `palaestra.make` accepts them (short palaestra ids, plugins' ids).

    Raises:
        UnknownEnvError: an id nobody registered (the message names close matches).
    """

    def __init__(self, env_ids: Sequence[str]):
        if not env_ids:
            raise ValueError("serve needs at least one env id")
        self.aliases = {given: resolve_id(given) for given in env_ids}
        self.ids = tuple(dict.fromkeys(self.aliases.values()))

    def resolve(self, env_id: str | None) -> str:
        """The served id that `env_id` names (None: the only one served).

        Raises:
            UnknownEnvError: `env_id` is not served here (the message names close matches and the
                served ids), or None while several are served.
        """
        served = ", ".join(self.ids)
        if env_id is None:
            if len(self.ids) == 1:
                return self.ids[0]
            raise UnknownEnvError(f"reset needs an env_id: this server serves {served}")
        if env_id in self.aliases:
            return self.aliases[env_id]
        for candidate in (env_id, f"palaestra/{env_id}"):
            if candidate in self.ids:
                return candidate
        close = difflib.get_close_matches(env_id, self.ids, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownEnvError(f"env id {env_id!r} is not served here.{hint} This server serves: {served}")


class SessionEnv(Environment[TextAction, TextObservation, State]):
    """The env of one session: reset with an env id, seed, kwargs and options; step with text.

    Args:
        served: the ids this server serves.
        idle_timeout_s: shown in the error of a call after the server closed the session.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True  # every session has an env of its own

    def __init__(self, served: ServedIds, idle_timeout_s: float | None = None):
        super().__init__()
        self.served = served
        self.idle_timeout_s = idle_timeout_s
        self._env: gym.Env | None = None
        self._key: tuple[str, str] | None = None
        self._state = State()
        self._closed = False

    def reset(  # OpenEnv passes the reset data as keywords
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        env_id: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        **unknown: Any,
    ) -> TextObservation:
        self._check_open()
        if unknown:
            keys = ", ".join(sorted(unknown))
            raise TypeError(f"reset got unknown keys {keys}; it takes seed, env_id, env_kwargs, options")
        full = self.served.resolve(env_id)
        kwargs = dict(env_kwargs or {})
        key = (full, json.dumps(kwargs, sort_keys=True, default=repr))
        if key != self._key:
            self._close_env()
            self._env, self._key = make(full, **kwargs), key
        assert self._env is not None
        observation, info = self._env.reset(seed=seed, options=options)
        self._state = State(episode_id=episode_id or uuid.uuid4().hex, step_count=0, env_id=full)
        unwrapped = self._env.unwrapped
        system_prompt = str(getattr(unwrapped, "system_prompt", "") or "")
        tools = json_safe(list(getattr(unwrapped, "tools", None) or []))
        parser = getattr(unwrapped, "tool_parser", None)
        return TextObservation(
            text=_text(observation),
            info=json_safe(info),
            system_prompt=system_prompt,
            env_id=full,
            tools=tools,
            tool_parser=str(getattr(parser, "name", "")),
        )

    def step(self, action: TextAction, timeout_s: float | None = None, **kwargs: Any) -> TextObservation:
        self._check_open()
        if self._env is None:
            raise RuntimeError("step before reset: send a reset (with env_id and seed) first")
        observation, reward, terminated, truncated, info = self._env.step(action.text)
        self._state.step_count += 1
        return TextObservation(
            text=_text(observation),
            reward=float(reward),
            done=bool(terminated or truncated),
            terminated=bool(terminated),
            truncated=bool(truncated),
            info=json_safe(info),
            env_id=self._key[0] if self._key else "",
        )

    @property
    def state(self) -> State:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        from palaestra import __version__

        return EnvironmentMetadata(
            name=SERVER_NAME,
            description=f"palaestra envs: {', '.join(self.served.ids)}",
            version=__version__,
        )

    def close(self) -> None:
        """Close the env (its browser context, sandbox, subprocess); later calls are refused."""
        self._closed = True
        self._close_env()

    def _close_env(self) -> None:
        env, self._env, self._key = self._env, None, None
        if env is not None:
            env.close()

    def _check_open(self) -> None:
        if self._closed:
            after = f" after {self.idle_timeout_s:g} s idle" if self.idle_timeout_s else ""
            raise SessionClosedError(f"the server closed this session{after}; connect again")


def _text(observation: Any) -> str:
    """The text of an observation (GUI-mode envs: the text part of their dict)."""
    if isinstance(observation, str):
        return observation
    if isinstance(observation, dict) and isinstance(observation.get("text"), str):
        return observation["text"]
    return str(observation)
