"""Sandbox fixtures: one sandbox per backend available here (see tests/sandbox/backends.py)."""

from __future__ import annotations

import pytest

from palaestra.sandbox import SandboxConfig
from tests.sandbox.backends import BACKENDS, build, config_for


@pytest.fixture(scope="module", params=BACKENDS)
def sandbox_config(request) -> SandboxConfig:
    """The config of each backend (skips the unavailable ones)."""
    return config_for(request.param)


@pytest.fixture(scope="module")
def sandbox(sandbox_config):
    """A sandbox of each backend, shared by the tests of one module."""
    box = build(sandbox_config)
    yield box
    box.close()


@pytest.fixture(scope="module")
def local_sandbox():
    """The default local (bubblewrap) sandbox."""
    box = build(config_for("bubblewrap"))
    yield box
    box.close()
