"""LoopBridge: coroutines submitted in one turn of the caller's loop start together on the target loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from palaestra.agents.loop_bridge import LoopBridge


@pytest.fixture
def engine_loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def test_requests_of_one_turn_start_together(engine_loop):
    bridge = LoopBridge(engine_loop)
    in_flight: list[int] = []

    async def engine_call(i: int) -> int:
        assert asyncio.get_running_loop() is engine_loop
        in_flight.append(sum(not t.done() for t in asyncio.all_tasks()))
        await asyncio.sleep(0.01)
        return 2 * i

    async def episode(i: int) -> int:
        time.sleep(0.003)  # the caller's own work before its request (an env step); frees the GIL
        return await bridge.run(engine_call(i))

    async def main() -> list[int]:
        return list(await asyncio.gather(*(episode(i) for i in range(8))))

    assert asyncio.run(main()) == [2 * i for i in range(8)]
    assert in_flight == [8] * 8, "handed over one by one, the first would start alone"


def test_errors_and_cancellation_cross_back(engine_loop):
    bridge = LoopBridge(engine_loop)
    cancelled = threading.Event()

    async def fails() -> None:
        raise KeyError("boom")

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> None:
        with pytest.raises(KeyError, match="boom"):
            await bridge.run(fails())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bridge.run(slow()), timeout=0.2)

    asyncio.run(main())
    assert cancelled.wait(5), "the caller's timeout cancels the coroutine on the target loop"


def test_on_the_target_loop_it_just_awaits(engine_loop):
    bridge = LoopBridge(engine_loop)

    async def inner() -> str:
        return "here"

    async def outer() -> str:
        return await bridge.run(inner())

    assert asyncio.run_coroutine_threadsafe(outer(), engine_loop).result(timeout=5) == "here"
