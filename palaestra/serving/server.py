"""`palaestra serve`: any registered env over the OpenEnv protocol, with openenv-core's own server.

    app = create_app(["palaestra/Game-Wordle-v0"], max_sessions=256, idle_timeout_s=300)
    with EnvServer(app, port=0) as server:        # a background thread; `serve_forever()` blocks
        print(server.url)                         # ws://127.0.0.1:PORT

The app is openenv-core's `HTTPEnvServer` (WebSocket sessions at `/ws`, plus `/reset`, `/step`,
`/state`, `/schema`, `/metadata`, `/health`) over `SessionEnv`, one palaestra env per session. What
this module adds to openenv-core's session handling:

* a full server refuses a new client in the WebSocket close frame (1013, `CAPACITY_REACHED`), which
  every client sees in the error of its first call;
* the idle reaper checks every quarter of the timeout (openenv-core: at least every 5 s) and never
  closes a session in the middle of a call (a long sandbox run is not idleness);
* uvicorn pings every client, so one that vanished without closing its socket (a dead host, a cut
  network) is dropped within `idle_timeout_s` too.

A session ends, and its env is closed (browser context, sandbox, subprocess), when the client sends
`close`, disconnects, dies (the kernel closes its socket) or stays idle past `idle_timeout_s`. Beyond
`max_sessions`, a new client gets OpenEnv's `CAPACITY_REACHED` error at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import uvicorn
from fastapi import FastAPI
from openenv.core.env_server.http_server import HTTPEnvServer
from openenv.core.env_server.types import ConcurrencyConfig, Observation
from starlette import websockets
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from palaestra.envs.remote.protocol import TextAction, TextObservation
from palaestra.serving.session import ServedIds, SessionEnv

__all__ = ["EnvServer", "SessionServer", "create_app"]

logger = logging.getLogger(__name__)


class SessionServer(HTTPEnvServer):
    """openenv-core's server with an idle reaper that is prompt and spares sessions inside a call."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._busy: dict[str, int] = {}

    async def _run_in_session_executor(
        self, session_id: str, func: Callable[..., Observation], *args: Any, **kwargs: Any
    ) -> Observation:
        self._busy[session_id] = self._busy.get(session_id, 0) + 1
        try:
            return await super()._run_in_session_executor(session_id, func, *args, **kwargs)
        finally:
            self._busy[session_id] -= 1
            if not self._busy[session_id]:
                del self._busy[session_id]
            self._update_session_activity(session_id)

    async def _reap_idle_sessions(self) -> None:
        timeout = self._session_idle_timeout_s
        if timeout is None:
            return
        while True:
            await asyncio.sleep(min(max(timeout / 4, 0.05), 5.0))
            now = time.time()
            idle = [
                sid
                for sid, info in list(self._session_info.items())
                if sid not in self._busy and now - info.last_activity_at > timeout
            ]
            for sid in idle:
                logger.info("closing session %s: idle for more than %g s", sid, timeout)
                try:
                    await self._destroy_session(sid)
                except Exception as exc:  # the reaper must outlive one env's failing close
                    logger.warning("closing idle session %s failed: %s", sid, exc)

    @property
    def busy_sessions(self) -> int:
        """Sessions inside a reset or step right now."""
        return len(self._busy)


def create_app(
    env_ids: Sequence[str], *, max_sessions: int = 256, idle_timeout_s: float | None = 300.0
) -> FastAPI:
    """The ASGI app serving sessions of `env_ids`.

    Args:
        env_ids: the ids clients may reset to (as `palaestra.make` accepts them).
        max_sessions: sessions open at once; one more gets `CAPACITY_REACHED`.
        idle_timeout_s: close a session after this long without a reset or step (None: never).

    Raises:
        UnknownEnvError: an id nobody registered.
        ValueError: `max_sessions` < 1 or `idle_timeout_s` <= 0.
    """
    if max_sessions < 1:
        raise ValueError(f"max_sessions={max_sessions}; it must be >= 1")
    if idle_timeout_s is not None and not idle_timeout_s > 0:
        raise ValueError(f"idle_timeout_s={idle_timeout_s}; it must be > 0 seconds, or None")
    served = ServedIds(env_ids)
    app = FastAPI(title="palaestra serve", description=f"OpenEnv sessions of {', '.join(served.ids)}")
    server = SessionServer(
        partial(SessionEnv, served, idle_timeout_s),
        TextAction,
        TextObservation,
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=max_sessions, session_timeout=idle_timeout_s
        ),
    )
    server.register_routes(app)
    app.add_middleware(_QuietDisconnects)
    app.add_middleware(_RefuseWhenFull, sessions=server)
    app.state.sessions = server
    app.state.env_ids = served.ids
    return app


# what starlette raises on a socket whose client is gone (`WebSocketDisconnected`: starlette >= 0.47)
_GONE = (
    websockets.WebSocketDisconnect,
    getattr(websockets, "WebSocketDisconnected", websockets.WebSocketDisconnect),
)


class _QuietDisconnects:
    """Drops the errors openenv-core's endpoint raises when it answers or closes a socket whose client
    is already gone (a client that disconnected with a step in flight): an ordinary end of a session,
    not an error to log. The session is closed before they reach here."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except _GONE:
            if scope["type"] != "websocket":
                raise


class _RefuseWhenFull:
    """Refuses a new session of a full server in the close frame (code 1013, "try again later"), so a
    client sees the refusal in the error its first call raises: openenv-core's own refusal is a message
    sent before it closes the socket, which a client that is still sending its first call never reads.
    (openenv-core's check stays the backstop for clients that arrive at the same moment.)"""

    def __init__(self, app: ASGIApp, sessions: SessionServer):
        self.app, self.sessions = app, sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        full = self.sessions.active_sessions >= self.sessions.max_concurrent_envs
        if scope["type"] == "websocket" and scope["path"] == "/ws" and full:
            websocket = WebSocket(scope, receive, send)
            await websocket.accept()
            n = self.sessions.max_concurrent_envs
            await websocket.close(code=1013, reason=f"CAPACITY_REACHED: {n}/{n} sessions open")
            return
        await self.app(scope, receive, send)


class EnvServer:
    """Runs an app with uvicorn on a socket bound at construction (so `port=0` gets a free port).

    Args:
        app: the ASGI app (`create_app`).
        host: interface to listen on.
        port: TCP port; 0 picks a free one (see `port`).
        ping_interval_s: seconds between WebSocket pings to each client; a client that does not
            answer within as long again is dropped (None: no pings).
    """

    def __init__(
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, ping_interval_s: float | None = 20.0
    ):
        self.app = app
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(4096)  # clients that come before uvicorn runs wait in the kernel's queue
        self.host, self.port = host, self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            ws="websockets-sansio",
            ws_ping_interval=ping_interval_s,
            ws_ping_timeout=ping_interval_s,
            timeout_graceful_shutdown=5,
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The WebSocket base URL clients connect to (`ws://host:port`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def sessions(self) -> SessionServer:
        """The session manager (open sessions, capacity)."""
        server: SessionServer = self.app.state.sessions
        return server

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C, SIGTERM)."""
        self._server.run(sockets=[self._socket])

    def start(self) -> EnvServer:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.serve_forever, name="palaestra-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the env server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving (open sessions are closed) and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> EnvServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
