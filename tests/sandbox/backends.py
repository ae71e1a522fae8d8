"""The sandbox backends the tests run against, and how to build each (unavailable ones skip).

`backend_name` parametrises the shared behaviour and attack tests over:
    bubblewrap  the local backend (needs `bwrap`: apt-get install bubblewrap)
    unshare     the local backend's weak fallback (allow_weak_isolation=True)
    docker      the container backend against a real Docker Engine (see tests/sandbox/engine.py)
"""

from __future__ import annotations

import shutil
import warnings

import pytest

from palaestra.sandbox import Limits, SandboxConfig, make_sandbox

BACKENDS = ("bubblewrap", "unshare", "docker")

TEST_LIMITS = Limits(wall_time_s=8.0, cpu_time_s=3.0, memory_mb=256, max_processes=16, disk_mb=32)


def config_for(name: str) -> SandboxConfig:
    if name == "docker":
        try:
            from tests.sandbox.engine import docker_engine_or_skip_reason
        except ModuleNotFoundError:
            pytest.skip("docker backend: tests/sandbox/engine.py is missing")

        url_or_reason = docker_engine_or_skip_reason()
        if not url_or_reason.startswith(("unix://", "tcp://")):
            pytest.skip(f"docker backend: {url_or_reason}")
        from tests.sandbox.engine import SANDBOX_IMAGE

        return SandboxConfig(
            backend="docker",
            engine_url=url_or_reason,
            image=SANDBOX_IMAGE,
            limits=TEST_LIMITS,
            max_concurrency=2,
        )
    if shutil.which("bwrap" if name == "bubblewrap" else "unshare") is None:
        pytest.skip(f"{name} is not installed here (Debian: apt-get install bubblewrap util-linux)")
    return SandboxConfig(
        backend="local",
        isolation=name,
        allow_weak_isolation=name == "unshare",
        limits=TEST_LIMITS,
        max_concurrency=2,
    )


def build(config: SandboxConfig):
    """`make_sandbox` without the weak-isolation warning (the unshare fallback warns by design)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_sandbox(config)
