"""Web env tests need Playwright and a Chromium (Debian's `chromium`, installed by `make sysdeps`)."""

from __future__ import annotations

import os
import shutil

import pytest

from palaestra.envs.web.browser import DEBIAN_CHROMIUM


def _browser_missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install 'palaestra[web]')"
    if not os.path.exists(DEBIAN_CHROMIUM) and shutil.which("chromium") is None:
        return "no Chromium: apt-get install chromium (or playwright install chromium)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _browser_missing()
    if reason is None:
        return
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.skip(reason=reason))
