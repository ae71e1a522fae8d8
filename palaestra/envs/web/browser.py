"""One Chromium per process, driven by Playwright from a private event-loop thread.

Web envs are ordinary synchronous gymnasium envs, stepped from any thread (the rollout runner steps
blocking envs in a thread pool). Playwright's objects, though, belong to the event loop that made them.
So a `BrowserHost` owns a daemon thread running an asyncio loop with Playwright's async API; envs hand
it coroutines through `BrowserHost.run(...)`, which waits with a timeout. Many episodes share one
browser, each in its own isolated `BrowserContext` (cookies, storage, pages), and their steps overlap
inside the one loop while Chromium's renderer processes work in parallel.

Failure handling: a call that exceeds its timeout is cancelled and raises `BrowserTimeout`; a browser
that disconnected (crashed, killed) raises `BrowserCrashed`, and the host relaunches Chromium on the
next `new_context`. Closing the host closes every context, the browser and Playwright's driver, so no
process or temporary profile outlives it (tested).

Browser binary: Debian's `chromium` (`/usr/bin/chromium`) when present, else Playwright's own bundled
build (`playwright install chromium`, where downloads work). The launch flags keep Chromium off the
network: background networking, component updates, sync, QUIC and first-run tasks all make
connections that a closed network refuses (many at a time) and that a hermetic task never needs;
`--no-sandbox` is required when running as root (containers, CI).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
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

DEBIAN_CHROMIUM = "/usr/bin/chromium"
OFFLINE_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--mute-audio",
)


class BrowserError(RuntimeError):
    """The browser could not do what an env asked (crash, hang, launch failure)."""


class BrowserCrashed(BrowserError):
    """Chromium disconnected (crashed or was killed); the host relaunches it on the next episode."""


class BrowserTimeout(BrowserError):
    """A browser call took longer than its timeout (a hung page or browser)."""


class BrowserConfig(BaseModel):
    """How Chromium is launched.

    Attributes:
        executable_path: the Chromium binary; "auto" takes Debian's `/usr/bin/chromium` when it exists,
            else Playwright's bundled browser; None forces the bundled one.
        headless: run without a window.
        extra_args: more command-line flags, after the offline flags.
        launch_timeout_s: how long Chromium may take to start.
        call_timeout_s: default limit for one env call (a step's action, snapshot and checks).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    executable_path: str | None = "auto"
    headless: bool = True
    extra_args: tuple[str, ...] = ()
    launch_timeout_s: float = Field(default=30.0, gt=0)
    call_timeout_s: float = Field(default=20.0, gt=0)


def launch_kwargs(config: BrowserConfig | None = None) -> dict[str, Any]:
    """Keyword arguments for Playwright's `chromium.launch(...)` under `config`.

    Raises:
        BrowserError: `executable_path` names a file that does not exist.
    """
    config = config or BrowserConfig()
    path = config.executable_path
    if path == "auto":
        path = DEBIAN_CHROMIUM if os.path.exists(DEBIAN_CHROMIUM) else None
    elif path is not None and not os.path.exists(path) and shutil.which(path) is None:
        raise BrowserError(
            f"browser executable_path={path!r} does not exist; install Debian's chromium "
            "(apt-get install chromium) or set executable_path=None for Playwright's bundled browser"
        )
    args = [*OFFLINE_FLAGS, *config.extra_args]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses its own sandbox as root
    kwargs: dict[str, Any] = {
        "headless": config.headless,
        "args": args,
        "timeout": config.launch_timeout_s * 1000,
    }
    if path is not None:
        kwargs["executable_path"] = path
    return kwargs


class BrowserHost:
    """A Chromium browser and the event-loop thread that drives it.

    Args:
        config: how to launch Chromium.

    Use `run(fn)` to execute `await fn(browser)`-style coroutines on the host's loop from any thread,
    and `new_context(**options)` for an isolated browser context per episode.
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
        self._lock = threading.Lock()
        self._playwright: Any = None
        self._browser: Any = None
        self._contexts: set[Any] = set()
        self._closed = False
        self.launches = 0
        """How many times Chromium was launched (1 + restarts after crashes)."""

    # -- calling into the loop ---------------------------------------------------------------------
    def run(self, fn: Callable[[], Awaitable[T]], *, timeout_s: float | None = None) -> T:
        """Run the coroutine `fn()` on the host's loop and wait for its result.

        Raises:
            BrowserTimeout: it did not finish within `timeout_s` (default `config.call_timeout_s`);
                the coroutine is cancelled.
            BrowserCrashed: the browser disconnected during the call.
        """
        if self._closed:
            raise BrowserError("this BrowserHost is closed")
        if threading.current_thread() is self._thread:
            raise BrowserError("BrowserHost.run called from the browser thread; await the coroutine instead")
        timeout_s = self.config.call_timeout_s if timeout_s is None else timeout_s
        future = asyncio.run_coroutine_threadsafe(_call(fn), self._loop)
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
            raise

    @property
    def connected(self) -> bool:
        """Whether a launched browser is up."""
        return self._browser is not None and self._browser.is_connected()

    # -- contexts ----------------------------------------------------------------------------------
    def new_context(self, **options: Any) -> Any:
        """A fresh isolated browser context (launching or relaunching Chromium if needed).

        Args:
            **options: Playwright `new_context` options (viewport, device_scale_factor, ...).

        Returns:
            A Playwright async `BrowserContext`, to be used only through `run`.
        """
        with self._lock:
            if not self.connected:
                self.run(self._launch, timeout_s=self.config.launch_timeout_s + 5)

        async def make() -> Any:
            context = await self._browser.new_context(**options)
            self._contexts.add(context)
            return context

        return self.run(make)

    def close_context(self, context: Any, *, timeout_s: float = 10.0) -> None:
        """Close one episode's context; a context that will not close brings the browser down."""

        async def close() -> None:
            self._contexts.discard(context)
            await context.close()

        try:
            self.run(close, timeout_s=timeout_s)
        except BrowserCrashed:
            pass
        except BrowserError:
            logger.warning("a browser context did not close within %g s; restarting the browser", timeout_s)
            self.restart()

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
        if browser is not None:
            try:
                await asyncio.wait_for(browser.close(), timeout=10)
            except Exception as exc:  # a crashed browser may fail to close; its process is gone or killed
                logger.debug("closing the browser failed: %s", exc)

    def restart(self) -> None:
        """Close the browser (killing a hung one); the next `new_context` launches a fresh one."""
        try:
            self.run(self._shutdown_browser, timeout_s=20)
        except BrowserError as exc:
            logger.warning("could not shut the browser down cleanly: %s", exc)

    def close(self) -> None:
        """Close every context, the browser and Playwright's driver, then stop the loop thread."""
        if self._closed:
            return

        async def shutdown() -> None:
            await self._shutdown_browser()
            if self._playwright is not None:
                playwright, self._playwright = self._playwright, None
                await playwright.stop()

        try:
            self.run(shutdown, timeout_s=30)
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


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


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
