"""One Chromium per process, driven by Playwright from a private event-loop thread.

Web envs are ordinary synchronous gymnasium envs, stepped from any thread (the rollout runner steps
blocking envs in a thread pool). Playwright's objects, though, belong to the event loop that made them.
So a `BrowserHost` owns a daemon thread running an asyncio loop with Playwright's async API; envs hand
it coroutines through `BrowserHost.run(...)`, which waits with a timeout. Many episodes share one
browser, each in its own isolated `BrowserContext` (cookies, storage, pages), and their steps overlap
inside the one loop while Chromium's renderer processes work in parallel.

Failure handling: a call that exceeds its timeout is cancelled and raises `BrowserTimeout`; a browser
that disconnected (crashed, killed) raises `BrowserCrashed`, and the host relaunches Chromium on the
next `new_page`. Closing the host closes every context, the browser and Playwright's driver, so no
process or temporary profile outlives it (tested).

Launch settings and flags: `palaestra.envs.web.launch`.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from palaestra.envs.web.launch import (
    DEBIAN_CHROMIUM,
    BrowserConfig,
    BrowserCrashed,
    BrowserError,
    BrowserTimeout,
    launch_kwargs,
)

__all__ = [
    "DEBIAN_CHROMIUM",
    "BrowserConfig",
    "BrowserCrashed",
    "BrowserError",
    "BrowserHost",
    "BrowserTimeout",
    "close_shared",
    "launch_kwargs",
    "shared_host",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_QUIET_S = 0.025
"""Warm pages are made only after this long without a browser call in flight."""


class BrowserHost:
    """A Chromium browser and the event-loop thread that drives it.

    Args:
        config: how to launch Chromium.

    Use `run(fn)` to execute `await fn()` coroutines on the host's loop from any thread, `new_page(...)`
    for an episode's fresh isolated context and page, and `close_context(context)` when it is done.

    Warm pages: creating a page starts a renderer process, the largest fixed cost of an episode (about
    100 ms). Closing an episode's context runs in the background, and once it is closed the host makes
    a fresh context with one blank page for the next episode with the same context options, keeping up
    to `config.warm_pages` ready (on the browser loop, off the episodes' critical path). Each warm
    context is handed to exactly one episode and never reused, so episodes stay as isolated as with a
    context made on demand. `wait_idle()` waits for the background work; `close()` finishes closing
    contexts, cancels the rest and closes everything.
    """

    def __init__(self, config: BrowserConfig | None = None):
        try:
            import playwright.async_api  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "web envs need Playwright: pip install 'palaestra[web]' (and Debian's chromium, "
                "apt-get install chromium, or `playwright install chromium` where downloads work)"
            ) from exc
        self.config = config or BrowserConfig()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="palaestra-browser", daemon=True)
        self._thread.start()
        self._playwright: Any = None
        self._browser: Any = None
        self._launching: asyncio.Lock | None = None
        self._contexts: set[Any] = set()  # every context open in the browser: warm and in use
        self._in_use: dict[Any, tuple[str, dict[str, Any]]] = {}  # episode context -> its options
        self._warm: dict[str, deque[tuple[Any, Any, Any]]] = {}  # options key -> (browser, context, page)
        self._warming: dict[str, int] = {}  # options key -> warm pages being made
        self._tasks: set[asyncio.Task[Any]] = set()  # background work: warming and closing
        self._active = 0  # calls in flight on the loop
        self._calls = 0  # calls started so far
        self._stopping = False  # close() has begun: no more warm pages
        self._closed = False
        self.launches = 0
        """How many times Chromium was launched (1 + restarts after crashes)."""

    # -- calling into the loop ---------------------------------------------------------------------
    def run(self, fn: Callable[[], Awaitable[T]], *, timeout_s: float | None = None) -> T:
        """Run the coroutine `fn()` on the host's loop and wait for its result (an episode's call).

        Raises:
            BrowserTimeout: it did not finish within `timeout_s` (default `config.call_timeout_s`);
                the coroutine is cancelled.
            BrowserCrashed: the browser disconnected during the call.
        """
        if self._closed:
            raise BrowserError("this BrowserHost is closed")
        if threading.current_thread() is self._thread:
            raise BrowserError("BrowserHost.run called from the browser thread; await the coroutine instead")
        return self._submit(self._tracked(fn), timeout_s)

    def _submit(self, coro: Coroutine[Any, Any, T], timeout_s: float | None) -> T:
        timeout_s = self.config.call_timeout_s if timeout_s is None else timeout_s
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout as exc:
            future.cancel()
            raise BrowserTimeout(f"browser call did not finish within {timeout_s:g} s") from exc
        except Exception as exc:
            if self._browser is not None and not self._browser.is_connected():
                raise BrowserCrashed(f"the browser disconnected: {exc}") from exc
            if type(exc).__name__ == "TargetClosedError":
                raise BrowserCrashed(str(exc)) from exc
            if type(exc).__name__ == "TimeoutError":  # Playwright's own timeout inside the call
                raise BrowserTimeout(str(exc).splitlines()[0]) from exc
            raise

    @property
    def connected(self) -> bool:
        """Whether a launched browser is up."""
        return self._browser is not None and self._browser.is_connected()

    @property
    def episode_contexts(self) -> int:
        """Contexts handed out by `new_page` and not yet closed."""
        return len(self._in_use)

    @property
    def open_contexts(self) -> int:
        """Contexts open in the browser: in use, warm, or still closing."""
        return len(self._contexts)

    # -- episode pages -----------------------------------------------------------------------------
    def new_page(self, content: str, **options: Any) -> tuple[Any, Any]:
        """A fresh isolated context holding one page that shows `content`, for one episode.

        Launches Chromium if needed. Every network request of the context is aborted: task pages are
        self-contained documents. The replacement warm page is started once this one has loaded, so
        making it does not slow this page's load.

        Args:
            content: the page's HTML document (loaded with `set_content`, waiting for its load event).
            **options: Playwright `new_context` options (viewport, device_scale_factor, ...).

        Returns:
            (context, page): Playwright async objects, to be used only through `run`; give the context
            back with `close_context`.
        """
        timeout_s = self.config.launch_timeout_s + self.config.call_timeout_s + 5
        return self.run(lambda: self._take(content, options), timeout_s=timeout_s)

    def close_context(self, context: Any, *, timeout_s: float = 10.0) -> None:
        """Close one episode's context in the background; one that will not close brings the browser down.

        Returns at once; `wait_idle()` waits for the close, and `close()` always does.
        """
        taken = self._in_use.pop(context, None)
        if not self._closed:
            self._loop.call_soon_threadsafe(self._spawn, self._release(context, taken, timeout_s))

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until the background work (warm pages being made, contexts being closed) is done."""

        async def idle() -> None:
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

        self._submit(idle(), timeout_s)  # not an episode call: the warm pages' lull goes on

    async def _take(self, content: str, options: dict[str, Any]) -> tuple[Any, Any]:
        await self._ensure_browser()
        key = json.dumps(options, sort_keys=True, default=repr)
        warm = self._warm.setdefault(key, deque())
        while warm:
            browser, context, page = warm.popleft()
            if browser is self._browser and not page.is_closed():
                break
            self._contexts.discard(context)  # made by a browser that is gone
        else:
            context, page = await self._open(options)
        self._in_use[context] = (key, options)
        try:
            await page.set_content(content, wait_until="load", timeout=self.config.call_timeout_s * 1000)
        except BaseException:
            self._spawn(self._release(context, self._in_use.pop(context, None), 10.0))
            raise
        return context, page

    async def _release(
        self, context: Any, taken: tuple[str, dict[str, Any]] | None, timeout_s: float
    ) -> None:
        """Close an episode's context, then top its options' warm pages up (the freed renderer's turn)."""
        await self._close_context(context, timeout_s)
        if taken is None or not self.connected:
            return
        key, options = taken
        for _ in range(self.config.warm_pages - len(self._warm.get(key, ())) - self._warming.get(key, 0)):
            self._warming[key] = self._warming.get(key, 0) + 1
            self._spawn(self._make_warm(key, options))

    async def _open(self, options: dict[str, Any]) -> tuple[Any, Any]:
        context = await self._browser.new_context(**options)
        self._contexts.add(context)
        try:
            await context.route("**/*", _abort)
            page = await context.new_page()
        except BaseException:
            self._contexts.discard(context)
            await _close_quietly(context)
            raise
        return context, page

    async def _tracked(self, fn: Callable[[], Awaitable[T]]) -> T:
        self._active += 1
        self._calls += 1
        try:
            return await fn()
        finally:
            self._active -= 1

    async def _quiet(self) -> None:
        """Return once no call has been in flight for `_QUIET_S` (episodes waiting on their policy)."""
        while True:
            calls = self._calls
            await asyncio.sleep(_QUIET_S)
            if self._active == 0 and self._calls == calls:
                return

    async def _make_warm(self, key: str, options: dict[str, Any]) -> None:
        try:
            await self._quiet()  # making a page slows the calls it overlaps: wait for a lull
            browser = self._browser
            if self._stopping or browser is None or not browser.is_connected():
                return
            context, page = await self._open(options)
        except Exception as exc:  # a failing browser shows itself to the next episode that asks
            logger.debug("making a warm page failed: %s", exc)
            return
        finally:
            self._warming[key] -= 1
        if browser is self._browser and browser is not None and browser.is_connected():
            self._warm.setdefault(key, deque()).append((browser, context, page))
        else:
            self._contexts.discard(context)
            await _close_quietly(context)

    async def _close_context(self, context: Any, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(context.close(), timeout=timeout_s)
        except asyncio.TimeoutError:
            logger.warning("a browser context did not close within %g s; restarting the browser", timeout_s)
            await self._shutdown_browser()
        except Exception as exc:  # the browser crashed or was shut down: the context is gone with it
            logger.debug("closing a context failed: %s", exc)
        finally:
            self._contexts.discard(context)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as background work on the loop (call on the loop)."""
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the browser -------------------------------------------------------------------------------
    async def _ensure_browser(self) -> None:
        if self._launching is None:
            self._launching = asyncio.Lock()
        async with self._launching:
            if not self.connected:
                await asyncio.wait_for(self._launch(), timeout=self.config.launch_timeout_s + 5)

    async def _launch(self) -> None:
        from playwright.async_api import async_playwright

        if self._browser is not None:
            await self._shutdown_browser()
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        try:
            self._browser = await self._playwright.chromium.launch(**launch_kwargs(self.config))
        except Exception as exc:
            raise BrowserError(f"Chromium did not start: {exc}") from exc
        self.launches += 1
        logger.info("launched Chromium %s (launch #%d)", self._browser.version, self.launches)

    async def _shutdown_browser(self) -> None:
        browser, self._browser = self._browser, None
        self._contexts.clear()
        self._in_use.clear()
        self._warm.clear()
        if browser is not None:
            try:
                await asyncio.wait_for(browser.close(), timeout=10)
            except Exception as exc:  # a crashed browser may fail to close; its process is gone or killed
                logger.debug("closing the browser failed: %s", exc)

    def restart(self) -> None:
        """Close the browser (killing a hung one); the next `new_page` launches a fresh one."""
        try:
            self.run(self._shutdown_browser, timeout_s=20)
        except BrowserError as exc:
            logger.warning("could not shut the browser down cleanly: %s", exc)

    def close(self) -> None:
        """Finish closing contexts, stop warming pages, close Chromium and Playwright's driver, stop the loop."""
        if self._closed:
            return

        async def shutdown() -> None:
            self._stopping = True
            if self._tasks:  # let contexts finish closing (and warm pages finish opening)
                await asyncio.wait(list(self._tasks), timeout=10)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await self._shutdown_browser()
            if self._playwright is not None:
                playwright, self._playwright = self._playwright, None
                await playwright.stop()

        try:
            self._submit(shutdown(), 40)
        except BrowserError as exc:
            logger.warning("browser shutdown failed: %s", exc)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> BrowserHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _abort(route: Any) -> None:
    await route.abort()


async def _close_quietly(context: Any) -> None:
    try:
        await asyncio.wait_for(context.close(), timeout=10)
    except Exception as exc:
        logger.debug("closing a context failed: %s", exc)


_shared: dict[BrowserConfig, BrowserHost] = {}
_shared_lock = threading.Lock()


def shared_host(config: BrowserConfig | dict[str, Any] | None = None) -> BrowserHost:
    """The process's browser for `config` (one per distinct config), started on first use.

    Every env of a worker process shares it; it is closed at interpreter exit, or by `close_shared()`.
    """
    if not isinstance(config, BrowserConfig):
        config = BrowserConfig(**(config or {}))
    with _shared_lock:
        host = _shared.get(config)
        if host is None or host._closed:
            host = _shared[config] = BrowserHost(config)
        return host


def close_shared() -> None:
    """Close every shared browser host of this process."""
    with _shared_lock:
        hosts = list(_shared.values())
        _shared.clear()
    for host in hosts:
        host.close()


atexit.register(close_shared)
