"""A synchronous handle on one MCP server connection, for the (synchronous) gymnasium env.

The `mcp` SDK is async (anyio). `DrivenLoop` is an asyncio loop (one per env instance) that the caller
runs for the length of each request (`run_until_complete` on the calling thread, so a tool call costs
no hop between threads); between requests it rests, and the session's tasks wait where they are.
`MCPConnection` opens a session on it, with the SDK's stdio client (a server command it starts) or
streamable-HTTP client (a URL), and blocks the caller until each request is answered:

    connection = MCPConnection.open(loop, server, call_timeout_s=30, connect_timeout_s=60)
    connection.tools                        # the server's tools (`mcp.types.Tool`)
    connection.call("add", {"a": 1})        # CallToolResult; MCPServerError if the server died or hung
    connection.close()                      # session shut down, the server's whole process tree ended

A stdio server runs in a session (process group) of its own, marked with an environment variable;
`close` lets the SDK stop it (stdin closed, then SIGTERM, SIGKILL), then ends with psutil any process
left in its session or under it (a child a crashed server left behind), so no server process outlives
its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import psutil
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, CallToolResult, Tool

from palaestra.envs.tools.mcp.tasks import HttpServer, StdioServer

__all__ = ["DrivenLoop", "MCPConnection", "MCPServerError", "end_process_tree"]

T = TypeVar("T")

MARKER_VARIABLE = "PALAESTRA_MCP_SERVER"
"""Environment variable that marks a stdio server process started by palaestra (its value: the
connection's id), so the process is found among this process's children."""

_STOP_TIMEOUT_S = 10.0
"""Most seconds `close` waits for the SDK to shut a session down (it bounds its own waits: ~6 s)."""

_STDERR_TAIL = 600
"""Characters of a dead server's stderr quoted in the error."""


class MCPServerError(RuntimeError):
    """The MCP server failed (did not start, died or hung): the env's failure, not the agent's.

    It is not a `ToolError`: the rollout records the episode as failed with this message.
    """


class DrivenLoop:
    """An asyncio event loop that runs only while a caller waits on it (see the module docstring).

    `run` runs the loop on the calling thread until the coroutine is done, one caller at a time. A
    caller whose thread already runs an event loop (a notebook, an async program) cannot run a second
    one there: its request runs the loop on a short-lived helper thread instead. Tasks started with
    `start` (a session held open) live across requests and advance whenever the loop runs.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._lock = threading.Lock()

    def start(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Create a task that runs whenever the loop runs (from now on, across requests)."""
        with self._lock:
            return self.loop.create_task(coro)

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run the loop until `coro` is done; on `timeout` it is cancelled and `TimeoutError` raised."""
        bounded = asyncio.wait_for(coro, timeout)
        if asyncio._get_running_loop() is None:  # the usual case: a synchronous caller
            with self._lock:
                return self.loop.run_until_complete(bounded)
        outcome: list[Any] = []

        def drive() -> None:
            try:
                with self._lock:
                    outcome.append((True, self.loop.run_until_complete(bounded)))
            except BaseException as exc:  # handed to the caller below
                outcome.append((False, exc))

        helper = threading.Thread(target=drive, name="palaestra-mcp", daemon=True)
        helper.start()
        helper.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    @property
    def alive(self) -> bool:
        return not self.loop.is_closed()

    @property
    def busy(self) -> bool:
        """Whether a caller is running the loop now (e.g. a request stuck on a hung server)."""
        return self._lock.locked()

    def stop(self) -> None:
        """Cancel what is left on the loop, let it unwind, and close the loop (idempotent)."""
        if self.loop.is_closed():
            return
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()

        async def unwind() -> None:
            await asyncio.gather(*pending, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        with contextlib.suppress(Exception):
            self.run(unwind(), _STOP_TIMEOUT_S)
        with self._lock:
            self.loop.close()


def resolve_command(server: StdioServer) -> str | None:
    """The executable a stdio server runs ("python": this interpreter), or None if there is none."""
    if server.command == "python":
        return sys.executable
    if os.sep in server.command:
        path = os.path.join(server.cwd or "", os.path.expanduser(server.command))
        return path if os.access(path, os.X_OK) else None
    return shutil.which(server.command)


def server_label(server: StdioServer | HttpServer) -> str:
    """How errors name a server: its command line, or its URL."""
    if isinstance(server, HttpServer):
        return server.url
    return " ".join([server.command, *server.args])


class MCPConnection:
    """One open session with an MCP server (see the module docstring); build it with `open`."""

    def __init__(self, loop: DrivenLoop, server: StdioServer | HttpServer, call_timeout_s: float):
        self.loop = loop
        self.server = server
        self.call_timeout_s = call_timeout_s
        self.label = server_label(server)
        self.tools: list[Tool] = []
        self.process: psutil.Process | None = None
        """The stdio server's process (None for a URL)."""
        self._id = uuid.uuid4().hex
        self._session: ClientSession | None = None
        self._stop = asyncio.Event()  # bound to the loop when first awaited there
        self._serving: asyncio.Task[None] | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115 (closed by close())
        self._closed = False

    @classmethod
    def open(
        cls,
        loop: DrivenLoop,
        server: StdioServer | HttpServer,
        *,
        call_timeout_s: float,
        connect_timeout_s: float,
    ) -> MCPConnection:
        """Start (stdio) or reach (URL) the server, initialize a session and list its tools.

        Raises:
            MCPServerError: the server could not be started or reached, or did not answer within
                `connect_timeout_s` (the connection is closed, its process ended).
        """
        connection = cls(loop, server, call_timeout_s)
        ready: asyncio.Future[list[Tool]] = loop.loop.create_future()
        connection._serving = loop.start(connection._serve(ready))
        try:
            connection.tools = loop.run(asyncio.shield(ready), connect_timeout_s)
        except TimeoutError:
            connection.close(kill=True)
            raise MCPServerError(
                f"the MCP server {connection.label} did not answer initialize and tools/list within "
                f"connect_timeout_s={connect_timeout_s}{connection._stderr_tail()}"
            ) from None
        except Exception as exc:
            connection.close(kill=True)
            raise MCPServerError(
                f"could not connect to the MCP server {connection.label}: {_cause(exc)}"
                f"{connection._stderr_tail()}"
            ) from exc
        return connection

    # -- the session task ------------------------------------------------------------------------
    async def _serve(self, ready: asyncio.Future[list[Tool]]) -> None:
        """Open the transport and session, hand the tools to `ready`, hold the session until `close`."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                if isinstance(self.server, HttpServer):
                    streams = await stack.enter_async_context(self._http_transport(self.server))
                else:
                    streams = await stack.enter_async_context(self._stdio_transport(self.server))
                session = await stack.enter_async_context(ClientSession(*streams))
                await session.initialize()
                if self.process is None and isinstance(self.server, StdioServer):
                    self._find_process()  # it answered, so it runs its own program now
                tools = await _list_all_tools(session)
                self._session = session
                ready.set_result(tools)
                await self._stop.wait()
        except BaseException as exc:  # the session's end (a dead server's included) is `close`'s to report
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        finally:
            self._session = None

    def _stdio_transport(self, server: StdioServer) -> contextlib.AbstractAsyncContextManager[Any]:
        command = resolve_command(server) or server.command
        env = {**server.env, MARKER_VARIABLE: self._id}
        params = StdioServerParameters(command=command, args=server.args, env=env, cwd=server.cwd)
        return _StdioWithProcess(stdio_client(params, errlog=self._stderr), self)

    @staticmethod
    def _http_transport(server: HttpServer) -> contextlib.AbstractAsyncContextManager[Any]:
        from mcp.shared._httpx_utils import create_mcp_http_client

        client = create_mcp_http_client(headers=server.headers or None)
        return streamable_http_client(server.url, http_client=client)

    def _find_process(self) -> None:
        """The stdio server's process: the child of this process that carries our marker (not found
        while the child still runs this program, between fork and exec)."""
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                if child.environ().get(MARKER_VARIABLE) == self._id:
                    self.process = child
                    return

    # -- requests --------------------------------------------------------------------------------
    def call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call a tool and wait for its result.

        Raises:
            MCPError: the server answered with a JSON-RPC error (an unknown tool, bad arguments).
            MCPServerError: the server died, or did not answer within `call_timeout_s`.
        """
        if self._session is None or self._closed:
            raise MCPServerError(f"the session with the MCP server {self.label} is closed")
        session = self._session
        try:
            return self.loop.run(session.call_tool(name, arguments), self.call_timeout_s)
        except TimeoutError:
            raise MCPServerError(
                f"the MCP server {self.label} hung: tools/call {name!r} got no answer within "
                f"call_timeout_s={self.call_timeout_s}"
            ) from None
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED or not self.server_alive():
                raise MCPServerError(self._died(f"tools/call {name!r}")) from exc
            raise
        except Exception as exc:  # a transport failure (e.g. the HTTP server went away)
            raise MCPServerError(
                f"the MCP server {self.label} failed during tools/call {name!r}: {_cause(exc)}"
            ) from exc

    def server_alive(self) -> bool:
        """Whether the stdio server's process still runs (True for a URL: nothing to watch)."""
        if self.process is None:
            return isinstance(self.server, HttpServer)
        return _running(self.process)

    def _died(self, during: str) -> str:
        # no exit code: the SDK's event loop reaps the process, and waiting on it here would race that
        return f"the MCP server {self.label} died during {during}{self._stderr_tail()}"

    def _stderr_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read().strip()
            if text:
                return f"; its stderr ends: {' '.join(text[-_STDERR_TAIL:].split())}"
        return ""

    # -- shutdown --------------------------------------------------------------------------------
    def close(self, *, kill: bool = False) -> None:
        """Shut the session down and end the server's process tree (idempotent).

        Args:
            kill: end the process tree first (a hung or failed server), instead of letting the SDK
                stop the server politely (stdin closed, a grace period, then signals).
        """
        if self._closed:
            return
        self._closed = True
        root = self.process
        kill = kill or self.loop.busy  # closed from another thread mid-request: end the server so it returns
        if kill and root is not None:
            end_process_tree(root)
        serving = self._serving
        if serving is not None and not serving.done() and self.loop.alive:
            if kill:
                serving.cancel()
            else:
                self._stop.set()
            try:
                self.loop.run(asyncio.wait([serving]), _STOP_TIMEOUT_S)
            except TimeoutError:  # a stuck shutdown; the tree is ended below anyway
                serving.cancel()
                with contextlib.suppress(Exception):
                    self.loop.run(asyncio.wait([serving]), _STOP_TIMEOUT_S)
        if root is not None:
            end_process_tree(root)
        self._stderr.close()


class _StdioWithProcess(contextlib.AbstractAsyncContextManager[Any]):
    """The SDK's stdio client, noting the server's process once it is started."""

    def __init__(self, inner: contextlib.AbstractAsyncContextManager[Any], connection: MCPConnection):
        self.inner, self.connection = inner, connection

    async def __aenter__(self) -> Any:
        streams = await self.inner.__aenter__()
        self.connection._find_process()
        return streams

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self.inner.__aexit__(*exc)


async def _list_all_tools(session: ClientSession) -> list[Tool]:
    """Every tool of the server (all pages of tools/list)."""
    from mcp.types import PaginatedRequestParams

    result = await session.list_tools()
    tools = list(result.tools)
    while result.next_cursor:
        result = await session.list_tools(params=PaginatedRequestParams(cursor=result.next_cursor))
        tools.extend(result.tools)
    return tools


def _cause(exc: BaseException) -> str:
    """One line for an exception, through the exception groups anyio wraps transport errors in."""
    while isinstance(inner := getattr(exc, "exceptions", None), tuple) and inner:  # an ExceptionGroup
        exc = inner[0]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def end_process_tree(root: psutil.Process, timeout: float = 3.0) -> None:
    """End a process, its descendants and every process of its session (SIGTERM, then SIGKILL).

    A stdio server leads a session of its own, so a child it left behind when it crashed (now
    re-parented) is still found by its session id. The root, this process's child, is left for the
    SDK's event loop to reap (reaping it here would race that).
    """
    procs: dict[int, psutil.Process] = {}
    if _running(root):
        procs[root.pid] = root
        with contextlib.suppress(psutil.Error):
            procs.update((p.pid, p) for p in root.children(recursive=True))
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if proc.pid != os.getpid() and os.getsid(proc.pid) == root.pid:
                procs[proc.pid] = proc
    for signal_all in (psutil.Process.terminate, psutil.Process.kill):
        for proc in procs.values():
            with contextlib.suppress(psutil.Error):
                signal_all(proc)
        others = [p for p in procs.values() if p.pid != root.pid]
        _, left = psutil.wait_procs(others, timeout=timeout)
        deadline = time.monotonic() + timeout
        while root.pid in procs and _running(root) and time.monotonic() < deadline:
            time.sleep(0.01)
        procs = {p.pid: p for p in left} | ({root.pid: root} if root.pid in procs and _running(root) else {})
        if not procs:
            return


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (a dead child its parent has not reaped yet)."""
    with contextlib.suppress(psutil.Error):
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    return False
