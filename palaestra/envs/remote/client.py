"""`RemoteEnv`: a gymnasium env whose episodes run on an OpenEnv server.

    env = RemoteEnv("ws://127.0.0.1:8765", "palaestra/Game-Wordle-v0")
    observation, info = env.reset(seed=3)         # one WebSocket session per RemoteEnv
    observation, reward, terminated, truncated, info = env.step("guess: crane")
    env.close()                                   # the server closes the session and its env

The server is `palaestra serve` (same observations, rewards, info and system prompt as the env in
process: same seeds, same episodes) or any other OpenEnv server, whose actions and observations
`OpenEnvWire` maps to text. Which one it is, the server says (`GET /metadata`).

Failures: a server that refuses (full, unknown id), dies or stops answering raises `RemoteEnvError`
naming the server and the cause; the rollout records it as the episode's error and goes on. Every
call waits at most `timeout_s`; a server that vanished without closing the connection is noticed by
the WebSocket pings of openenv-core's client within 40 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import gymnasium as gym
import httpx

from palaestra.envs.core import TextSpace
from palaestra.envs.remote.protocol import SERVER_NAME
from palaestra.envs.remote.wire import Answer, OpenEnvWire, PalaestraWire, Wire
from palaestra.tools.calls import TOOL_PARSERS, get_tool_parser

__all__ = ["RemoteEnv", "RemoteEnvError", "check_remote_env", "wire_for"]


class RemoteEnvError(RuntimeError):
    """The server refused a call, closed the session, died or did not answer in time."""


def _http_url(server: str) -> str:
    url = server.rstrip("/")
    for ws, http in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(ws):
            return http + url[len(ws) :]
    return url if url.startswith(("http://", "https://")) else f"http://{url}"


def wire_for(server: str, options: dict[str, Any] | None = None, timeout_s: float = 30.0) -> Wire:
    """The wire of `server`: palaestra's own, or `OpenEnvWire` from its schema.

    Args:
        server: the server's URL (ws://, wss://, http:// or https://).
        options: `OpenEnvWire`'s keywords (`action_field`, `observation_field`, `system_prompt`).
        timeout_s: for the two HTTP requests.

    Raises:
        RemoteEnvError: the server cannot be reached or is not an OpenEnv server.
    """
    base = _http_url(server)
    try:
        with httpx.Client(base_url=base, timeout=timeout_s, trust_env=False) as http:
            metadata = http.get("/metadata")
            if metadata.status_code == 200 and metadata.json().get("name") == SERVER_NAME:
                return PalaestraWire()
            schema = http.get("/schema")
            schema.raise_for_status()
            schema_ = schema.json()
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        raise RemoteEnvError(f"cannot reach the OpenEnv server at {server}: {exc}") from exc
    unknown = sorted(set(options or {}) - {"action_field", "observation_field", "system_prompt"})
    if unknown:
        raise RemoteEnvError(
            f"{server} is an OpenEnv server, not palaestra's: its env kwargs are the adapter's options "
            f"action_field, observation_field and system_prompt, not {', '.join(unknown)}"
        )
    try:
        return OpenEnvWire(schema_, **(options or {}))
    except ValueError as exc:
        raise RemoteEnvError(f"{server}: {exc}") from exc


class RemoteEnv(gym.Env[str, str]):
    """One session on an OpenEnv server, as a palaestra text env.

    The session is openenv-core's `GenericEnvClient` (its synchronous wrapper), opened on the first
    reset and closed by `close`.

    Args:
        server: the server's URL, e.g. "ws://127.0.0.1:8765".
        env_id: the env to reset to (a palaestra server's id; a label for other OpenEnv servers).
        env_kwargs: a palaestra server: the env's kwargs; another OpenEnv server: `OpenEnvWire`'s
            options (`action_field`, `observation_field`, `system_prompt`).
        timeout_s: the longest a reset or step may take on the server.
        connect_timeout_s: the longest connecting may take.
        wire: how actions and observations map (default: asked of the server, `wire_for`).
    """

    metadata: dict[str, Any] = {"render_modes": [], "blocking_step": True}  # noqa: RUF012 (gym.Env's type)

    def __init__(
        self,
        server: str,
        env_id: str,
        *,
        env_kwargs: dict[str, Any] | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 30.0,
        wire: Wire | None = None,
    ):
        self.server, self.env_id = server, env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.wire = wire
        self.system_prompt = ""
        self.tools: list[dict[str, Any]] = []
        """The remote env's tool declarations (a tool env's; empty otherwise), known after `reset`."""
        self.tool_parser = get_tool_parser("auto")
        self.observation_space = TextSpace()
        self.action_space = TextSpace()
        self._client: Any = None  # openenv's SyncEnvClient, while a session is open
        self._done = True

    # -- gymnasium API -----------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        if self.wire is None:
            self.wire = wire_for(self.server, self.env_kwargs, self.connect_timeout_s)
        wire = self.wire
        kwargs = self.env_kwargs if isinstance(wire, PalaestraWire) else {}
        answer = wire.answer(self._call("reset", wire.reset_data(self.env_id, kwargs, seed, options)))
        answer = wire.after_reset(answer, lambda data: self._call("step", data))
        self.system_prompt = answer.system_prompt
        self.tools = answer.tools
        # a format registered only on the server is read as `auto` here (its calls are sent as hermes tags)
        self.tool_parser = get_tool_parser(
            answer.tool_parser if answer.tool_parser in TOOL_PARSERS else "auto"
        )
        self._done = False
        return answer.text, answer.info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.wire is None or self._done:
            raise RuntimeError("RemoteEnv.step called before reset() or after the episode ended")
        payload = self.wire.action(action)
        if isinstance(payload, str):  # an unmappable reply is a format error; the server never sees it
            answer = Answer(payload, info={"success": False, "format_error": payload})
        else:
            answer = self.wire.answer(self._call("step", payload))
        self._done = answer.terminated or answer.truncated
        return answer.text, answer.reward, answer.terminated, answer.truncated, answer.info

    def close(self) -> None:
        """End the session: the server closes its env."""
        self._disconnect()
        super().close()

    # -- the session -------------------------------------------------------------------------------
    def _call(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """`reset(**data)` or `step(data)` on the session; any failure raises `RemoteEnvError`."""
        from openenv.core.generic_client import GenericEnvClient

        try:
            if self._client is None:
                client = GenericEnvClient(
                    base_url=self.server,
                    connect_timeout_s=self.connect_timeout_s,
                    message_timeout_s=self.timeout_s,
                ).sync()
                self._client = client.connect()
            result = self._client.reset(**data) if kind == "reset" else self._client.step(data)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            self._disconnect()
            raise RemoteEnvError(f"{self.server} did not answer {kind} within {self.timeout_s:g} s") from exc
        except Exception as exc:  # refused, closed by the server, connection lost
            self._disconnect()
            hint = ""
            if "CAPACITY_REACHED" in str(exc):
                hint = " (the server is full: raise its --max-sessions, or run fewer episodes at once)"
            raise RemoteEnvError(
                f"{kind} on {self.server} failed: {type(exc).__name__}: {exc}{hint}"
            ) from exc
        return {"observation": result.observation, "reward": result.reward, "done": result.done}

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # the server may be gone already
                client.close()


def check_remote_env(server: str, env_id: str, env_kwargs: dict[str, Any] | None = None) -> None:
    """Open a session on `server`, reset `env_id` with `env_kwargs` (seed 0) and close it: a check
    before a run relies on the server.

    Raises:
        RemoteEnvError: the server cannot be reached, is full, or refused the id or kwargs (one line).
    """
    env = RemoteEnv(server, env_id, env_kwargs=env_kwargs, timeout_s=120.0)
    try:
        env.reset(seed=0)
    finally:
        env.close()
