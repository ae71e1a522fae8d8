"""`SandboxPool`: many executions at once on one sandbox, bounded by its slots.

A sandbox is thread-safe and limits itself to `max_concurrency` executions (each slot keeps its warm
resources: a uid and cgroup for the local backend, a container for docker). The pool adds the ways
callers submit work: futures from threads, `map` over a batch, and `arun` for asyncio code (the
rollout runner), so an event loop never blocks on a program.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from palaestra.sandbox.api import ExecutionResult, Limits, Sandbox

__all__ = ["PythonJob", "SandboxPool"]


@dataclass(frozen=True)
class PythonJob:
    """One `run_python` call, for `SandboxPool.map`."""

    code: str
    stdin: str | bytes = b""
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    args: Sequence[str] = ()
    limits: Limits | None = None


class SandboxPool:
    """Runs executions on `sandbox` from a bounded thread pool (one thread per sandbox slot).

    Args:
        sandbox: the sandbox to run on; the pool does not own it unless `owns_sandbox`.
        owns_sandbox: close the sandbox when the pool closes.
    """

    def __init__(self, sandbox: Sandbox, *, owns_sandbox: bool = False):
        self.sandbox = sandbox
        self.owns_sandbox = owns_sandbox
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=sandbox.max_concurrency, thread_name_prefix="palaestra-sandbox"
        )

    def submit(self, job: PythonJob) -> concurrent.futures.Future[ExecutionResult]:
        """Start `job`; the future resolves to its `ExecutionResult`."""
        return self._executor.submit(
            self.sandbox.run_python,
            job.code,
            stdin=job.stdin,
            files=job.files,
            args=job.args,
            limits=job.limits,
        )

    def map(self, jobs: Iterable[PythonJob]) -> list[ExecutionResult]:
        """Run `jobs` concurrently; results in the order of `jobs`."""
        futures = [self.submit(job) for job in jobs]
        return [f.result() for f in futures]

    async def arun(self, job: PythonJob) -> ExecutionResult:
        """Run `job` without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(job))

    def close(self) -> None:
        """Wait for running jobs, then release the threads (and the sandbox if owned)."""
        self._executor.shutdown(wait=True)
        if self.owns_sandbox:
            self.sandbox.close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
