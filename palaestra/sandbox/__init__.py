"""Isolated execution of untrusted programs (model-written code) with hard resource limits.

    from palaestra.sandbox import SandboxConfig, make_sandbox

    with make_sandbox(SandboxConfig(backend="local")) as sandbox:
        result = sandbox.run_python("print(sum(range(10)))")
        assert result.ok and result.stdout == "45\\n"

Backends: `local` (bubblewrap namespaces; `palaestra.sandbox.local`) and `docker` / `podman`
(containers; `palaestra.sandbox.docker`). `SandboxPool` runs many executions concurrently; `Sandbox.session()` opens a `SandboxSession`, executions
that share one work dir (a multi-turn shell).
"""

from __future__ import annotations

import atexit
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from palaestra.sandbox.api import (
    LIMIT_KINDS,
    ExecutionResult,
    LimitKind,
    Limits,
    Sandbox,
    SandboxError,
    SandboxSession,
    SandboxUnavailableError,
)
from palaestra.sandbox.pool import PythonJob, SandboxPool

__all__ = [
    "LIMIT_KINDS",
    "ExecutionResult",
    "LazySandbox",
    "LimitKind",
    "Limits",
    "PythonJob",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxPool",
    "SandboxSession",
    "SandboxUnavailableError",
    "make_sandbox",
    "sandbox_for",
    "shared_sandbox",
]


class SandboxConfig(BaseModel):
    """Which sandbox backend runs code, with what limits (a section of env kwargs and YAML configs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["local", "docker", "podman"] = Field(
        "local", description="local: bubblewrap namespaces (default); docker/podman: a container engine."
    )
    limits: Limits = Field(default_factory=Limits, description="Default limits of every execution.")
    max_concurrency: int = Field(4, ge=1, description="Executions running at once.")
    isolation: Literal["auto", "bubblewrap", "unshare"] = Field(
        "auto", description="local only: namespace tool; 'unshare' is the weak fallback."
    )
    allow_weak_isolation: bool = Field(
        False, description="local only: permit the unshare fallback, which leaves host files readable."
    )
    warm: bool = Field(
        True, description="local only: keep a pre-started single-use sandbox per slot (lower latency)."
    )
    python: str | None = Field(None, description="Interpreter inside the sandbox (default: the system's).")
    image: str = Field("palaestra-sandbox:latest", description="docker/podman only: the sandbox image.")
    engine_url: str | None = Field(
        None, description="docker/podman only: engine socket URL (default: DOCKER_HOST or the standard one)."
    )


def make_sandbox(config: SandboxConfig | dict | None = None) -> Sandbox:
    """Build the sandbox `config` describes (a `SandboxConfig`, its dict form, or None for defaults)."""
    if not isinstance(config, SandboxConfig):
        config = SandboxConfig.model_validate(config or {})
    if config.backend == "local":
        from palaestra.sandbox.local import LocalSandbox

        return LocalSandbox(
            limits=config.limits,
            max_concurrency=config.max_concurrency,
            isolation=config.isolation,
            allow_weak_isolation=config.allow_weak_isolation,
            python=config.python,
            warm=config.warm,
        )
    from palaestra.sandbox.docker import ContainerSandbox

    return ContainerSandbox(
        limits=config.limits,
        max_concurrency=config.max_concurrency,
        engine=config.backend,
        image=config.image,
        engine_url=config.engine_url,
        python=config.python,
    )


_shared: dict[str, Sandbox] = {}
_shared_lock = threading.Lock()


def shared_sandbox(config: SandboxConfig | dict | None = None) -> Sandbox:
    """The process-wide sandbox for `config`, built on first use and closed at exit.

    Envs use this so that many env instances (a rollout runs dozens) share one set of slots instead of
    each holding its own cgroups, uids or containers.
    """
    if not isinstance(config, SandboxConfig):
        config = SandboxConfig.model_validate(config or {})
    key = config.model_dump_json()
    with _shared_lock:
        box = _shared.get(key)
        if box is None:
            box = _shared[key] = make_sandbox(config)
        return box


def sandbox_for(spec: Sandbox | SandboxConfig | dict | None) -> Sandbox:
    """`spec` itself if it is a sandbox, else the process-wide shared sandbox for that config."""
    return spec if isinstance(spec, Sandbox) else shared_sandbox(spec)


class LazySandbox:
    """Mixin for an env that runs code: `sandbox` is built from `_sandbox_spec` (a sandbox, or a config
    for the process-wide shared one) on first use, so an env that is never stepped holds none."""

    _sandbox_spec: Sandbox | SandboxConfig | dict | None = None
    _sandbox: Sandbox | None = None

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox programs run in (the shared one for the config, built on first use)."""
        if self._sandbox is None:
            self._sandbox = sandbox_for(self._sandbox_spec)
        return self._sandbox


@atexit.register
def _close_shared() -> None:
    with _shared_lock:
        for box in _shared.values():
            box.close()
        _shared.clear()
