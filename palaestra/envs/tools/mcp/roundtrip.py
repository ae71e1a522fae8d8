"""The cost of the env around an MCP tool call: `measure_round_trip(n)` times one call of the bundled
calculator's `add` through `env.step` (parse the reply, check the arguments, the call on the env's
event loop, the tool message) and the same call made directly with an `mcp` client session, each
against its own stdio server, both from the same synchronous caller: the direct session lives on an
event loop of its own that the caller runs for each call (`run_until_complete`), the SDK's cheapest
use from synchronous code. `benchmarks/tools.py` prints it.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from palaestra.envs.tools.mcp.env import MCPEnv
from palaestra.envs.tools.mcp.tasks import StdioServer
from palaestra.tools.calls import ToolCall

__all__ = ["RoundTrip", "measure_round_trip"]

_TASK = "calc-add"
_CALL = ToolCall("add", {"a": 1234, "b": 5678})
_RESULT = "6912"
_WARMUP = 20


@dataclass(frozen=True)
class RoundTrip:
    """Median seconds of one tool call round trip.

    Attributes:
        calls: calls timed on each side.
        env_s: through `env.step` with a reply that makes the call.
        direct_s: `ClientSession.call_tool` on the caller's event loop (the anchor).
    """

    calls: int
    env_s: float
    direct_s: float

    @property
    def ratio(self) -> float:
        """env / direct (the goal: <= 1.2)."""
        return self.env_s / self.direct_s


def measure_round_trip(n: int = 200) -> RoundTrip:
    """Time `n` calls through the env and `n` direct calls, alternately (so a change of the machine's
    load hits both alike), after a warm-up; medians."""
    if n < 1:
        raise ValueError(f"n={n}; time at least 1 call")
    env = MCPEnv(max_turns=n + _WARMUP + 1)
    try:
        env.reset(seed=0, options={"task_index": [t.id for t in env.tasks].index(_TASK)})
        server = env.task.server
        assert isinstance(server, StdioServer)
        env_s, direct_s = _alternate(env, server, n)
    finally:
        env.close()
    return RoundTrip(n, env_s, direct_s)


def _alternate(env: MCPEnv, server: StdioServer, n: int) -> tuple[float, float]:
    """(env, direct) median seconds per call, timed alternately after a warm-up."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=server.args, env=server.env, cwd=server.cwd)
    reply = env.format_calls([_CALL])
    loop = asyncio.new_event_loop()
    opened: asyncio.Future[ClientSession] = loop.create_future()
    finished = asyncio.Event()

    async def hold() -> None:  # the session stays open in this task between the caller's calls
        async with stdio_client(params) as streams, ClientSession(*streams) as session:
            await session.initialize()
            await session.list_tools()
            opened.set_result(session)
            await finished.wait()

    holder = loop.create_task(hold())
    try:
        waiting: list[asyncio.Future[Any]] = [opened, holder]
        loop.run_until_complete(asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED))
        if not opened.done():
            holder.result()  # the direct session failed to open: raise why
        session = opened.result()
        through_env, direct = [], []
        for _ in range(n + _WARMUP):
            start = time.perf_counter()
            _, _, _, _, info = env.step(reply)
            through_env.append(time.perf_counter() - start)
            assert info["tool_messages"][0]["content"] == _RESULT, info
            start = time.perf_counter()
            result = loop.run_until_complete(session.call_tool(_CALL.name, _CALL.arguments))
            direct.append(time.perf_counter() - start)
            assert not result.is_error, result
    finally:
        finished.set()
        loop.run_until_complete(asyncio.wait([holder]))
        loop.close()
    return statistics.median(through_env[_WARMUP:]), statistics.median(direct[_WARMUP:])
