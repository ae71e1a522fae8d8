"""How Chromium is launched for web envs, and the errors the browser runtime raises.

Browser binary: Debian's `chromium` (`/usr/bin/chromium`) when present, else Playwright's own bundled
build (`playwright install chromium`, where downloads work). The launch flags keep Chromium off the
network: background networking, component updates, sync, QUIC and first-run tasks all make
connections that a closed network refuses (many at a time) and that a hermetic task never needs;
`--no-sandbox` is required when running as root (containers, CI).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEBIAN_CHROMIUM",
    "OFFLINE_FLAGS",
    "BrowserConfig",
    "BrowserCrashed",
    "BrowserError",
    "BrowserTimeout",
    "launch_kwargs",
]

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
        warm_pages: fresh contexts with a blank page kept ready per set of context options (made in the
            background when an episode's context closes, each handed to one episode; 0 makes every page
            on demand).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    executable_path: str | None = "auto"
    headless: bool = True
    extra_args: tuple[str, ...] = ()
    launch_timeout_s: float = Field(default=30.0, gt=0)
    call_timeout_s: float = Field(default=20.0, gt=0)
    warm_pages: int = Field(default=2, ge=0, le=64)


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
