"""Web and GUI environments: bundled MiniWoB-style tasks in a real Chromium driven by Playwright."""

from __future__ import annotations
