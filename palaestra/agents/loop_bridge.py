"""Run coroutines on an event loop that lives in another thread (a backend's engine loop), in batches.

`asyncio.run_coroutine_threadsafe` hands coroutines over one at a time: the other thread may wake and
start the first while the caller is still preparing the next (stepping envs, building prompts), so an
engine started there sees its requests trickle in and starts a step with the first alone. A
`LoopBridge` collects what the caller's loop submits during one turn (every callback ready at that
moment, e.g. every episode coroutine of a rollout at its start) and hands it over in one cross-thread
call, where the coroutines start together.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopBridge"]

_T = TypeVar("_T")
_Item = tuple[Coroutine[Any, Any, Any], concurrent.futures.Future]


class LoopBridge:
    """Submits coroutines to `loop` (running in another thread), batched per turn of the caller's loop.

    Args:
        loop: the target event loop; it must be running in a thread of its own.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._waiting: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._lock = threading.Lock()

    async def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run `coro` on the target loop and return its result (cancelling the call cancels it there).

        Called from the target loop itself, `coro` is simply awaited.
        """
        caller = asyncio.get_running_loop()
        if caller is self.loop:
            return await coro
        handle: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            waiting = self._waiting.setdefault(caller, [])
            waiting.append((coro, handle))
            first = len(waiting) == 1
        if first:  # runs after every callback ready now, so what they submit goes along
            caller.call_soon(self._flush, caller)
        return await asyncio.wrap_future(handle)

    def _flush(self, caller: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            waiting = self._waiting.pop(caller, [])
        if waiting:
            self.loop.call_soon_threadsafe(self._start, waiting)

    def _start(self, waiting: list[_Item]) -> None:
        """On the target loop: start every coroutine; results and cancellation flow through the handles."""
        for coro, handle in waiting:
            if handle.cancelled():  # the caller gave up before it crossed
                coro.close()
                continue
            task = self.loop.create_task(coro)
            task.add_done_callback(functools.partial(_settle, handle))
            handle.add_done_callback(functools.partial(_cancel_task, self.loop, task))


def _settle(handle: concurrent.futures.Future, task: asyncio.Task) -> None:
    """Copy a finished task's outcome to the caller's handle (unless the caller cancelled it)."""
    if not handle.set_running_or_notify_cancel():
        return
    if task.cancelled():
        handle.set_exception(concurrent.futures.CancelledError())
    elif task.exception() is not None:
        handle.set_exception(task.exception())
    else:
        handle.set_result(task.result())


def _cancel_task(
    loop: asyncio.AbstractEventLoop, task: asyncio.Task, handle: concurrent.futures.Future
) -> None:
    if handle.cancelled():
        loop.call_soon_threadsafe(task.cancel)
