"""The sandbox API every backend implements: limits in, a result out.

A `Sandbox` runs one untrusted program at a time per call (calls may come from many threads at once):
files are written into a fresh, private work dir (`/work` inside the sandbox), the command runs there
with no network, a cleared environment and the `Limits`, and the call returns an `ExecutionResult` with
the (truncated) output, the exit status, the duration and which limit, if any, stopped the program.
Nothing of one execution is visible to the next, except within a `SandboxSession`
(`Sandbox.session()`): its executions share one work dir for the session's lifetime (a multi-turn
shell's state), and the session's sandbox is gone when it closes.

Backends: `palaestra.sandbox.local` (bubblewrap namespaces, the default) and `palaestra.sandbox.docker`
(Docker Engine or podman). `palaestra.sandbox.make_sandbox` builds one from a `SandboxConfig`.
"""

from __future__ import annotations

import abc
import posixpath
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "LIMIT_KINDS",
    "TRUNCATION_MARKER",
    "ExecutionResult",
    "LimitKind",
    "Limits",
    "OutputBuffer",
    "Sandbox",
    "SandboxError",
    "SandboxSession",
    "SandboxUnavailableError",
    "validate_files",
]

LimitKind = Literal["wall_time", "cpu_time", "memory", "processes", "output", "file_size", "disk"]
LIMIT_KINDS: tuple[str, ...] = ("wall_time", "cpu_time", "memory", "processes", "output", "file_size", "disk")
TRUNCATION_MARKER = "\n[... output truncated by the sandbox: {dropped} more bytes ...]\n"
WORK_DIR = "/work"


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program in it): a setup error, a lost daemon."""


class SandboxUnavailableError(SandboxError):
    """The requested backend cannot run on this machine; the message says what is missing."""


class Limits(BaseModel):
    """Resource limits of one execution. Every limit is enforced by the kernel or the backend, never
    by the program's good will."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_time_s: float = Field(10.0, gt=0, description="Wall-clock limit; the whole process tree is killed.")
    cpu_time_s: float = Field(10.0, gt=0, description="CPU-time limit per process (RLIMIT_CPU).")
    memory_mb: int = Field(512, ge=16, description="Memory limit (cgroup where available, else RLIMIT_AS).")
    max_processes: int = Field(32, ge=1, description="Processes and threads alive at once.")
    max_output_bytes: int = Field(
        64 * 1024, ge=256, description="Per stream; beyond it output is dropped and the program killed."
    )
    max_file_size_mb: int = Field(16, ge=1, description="Largest file the program may write (RLIMIT_FSIZE).")
    disk_mb: int = Field(64, ge=1, description="Size of the writable work dir (a tmpfs).")
    max_open_files: int = Field(256, ge=16, description="Open file descriptors per process.")


@dataclass(frozen=True)
class ExecutionResult:
    """What one execution produced.

    Attributes:
        stdout, stderr: decoded output (UTF-8, undecodable bytes replaced), cut at the output limit
            with `TRUNCATION_MARKER` where bytes were dropped.
        exit_code: the program's exit status, or None when it was killed by a signal.
        signal: the signal that killed it, or None.
        duration_s: wall time from start to the end of the process tree.
        limit: the limit that stopped the program, or None.
        stdout_truncated, stderr_truncated: whether output was dropped.
    """

    stdout: str
    stderr: str
    exit_code: int | None
    signal: int | None
    duration_s: float
    limit: LimitKind | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        """Exited with status 0 and hit no limit."""
        return self.exit_code == 0 and self.limit is None

    def describe(self) -> str:
        """One line for feedback to an agent: how the program ended."""
        if self.limit is not None:
            return f"stopped: {self.limit.replace('_', ' ')} limit exceeded"
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        return f"exit status {self.exit_code}"


class OutputBuffer:
    """Collects one output stream up to `limit` bytes and counts what it drops (thread-safe)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._chunks: list[bytes] = []
        self._kept = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> bool:
        """Add `data`; returns False once the limit has been exceeded."""
        with self._lock:
            room = self.limit - self._kept
            if room > 0:
                self._chunks.append(data[:room])
                self._kept += min(room, len(data))
            self.dropped += max(0, len(data) - max(room, 0))
            return self.dropped == 0

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def text(self) -> str:
        out = b"".join(self._chunks).decode("utf-8", errors="replace")
        return out + TRUNCATION_MARKER.format(dropped=self.dropped) if self.dropped else out


def validate_files(files: Mapping[str, str | bytes] | None) -> dict[str, bytes]:
    """Normalise `{relative path: content}`; rejects absolute paths, `..` and empty names."""
    checked: dict[str, bytes] = {}
    for name, content in (files or {}).items():
        norm = posixpath.normpath(name) if isinstance(name, str) else ""
        if not norm or norm in (".", "..") or posixpath.isabs(norm) or norm.startswith("../"):
            raise ValueError(f"file name {name!r}: use a relative path inside the work dir, without '..'")
        if not isinstance(content, (str, bytes)):
            raise TypeError(f"file {name!r}: content must be str or bytes, got {type(content).__name__}")
        checked[norm] = content.encode() if isinstance(content, str) else content
    return checked


class Sandbox(abc.ABC):
    """Runs untrusted programs in isolation. Thread-safe: `run` may be called from many threads; at
    most `max_concurrency` executions run at once and further calls wait for a free slot.

    Inside, the work dir is `/work` (a fresh tmpfs per execution), `python` is the sandbox's Python
    interpreter, `PATH` holds only system directories, and there is no network.
    """

    name: str = "sandbox"
    python: str = "python3"
    """The interpreter to use in commands (a path valid inside the sandbox)."""

    def __init__(self, *, limits: Limits | None = None, max_concurrency: int = 4):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency}; it must be >= 1")
        self.limits = limits or Limits()
        self.max_concurrency = max_concurrency
        self._closed = False

    def run(
        self,
        command: Sequence[str],
        *,
        files: Mapping[str, str | bytes] | None = None,
        stdin: str | bytes = b"",
        limits: Limits | None = None,
    ) -> ExecutionResult:
        """Run `command` (an argv list) in `/work` after writing `files` there, feeding `stdin`."""
        if self._closed:
            raise SandboxError("this sandbox is closed")
        if isinstance(command, str) or not command or not all(isinstance(a, str) for a in command):
            raise TypeError("command must be a non-empty list of strings (an argv), not a shell string")
        data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        return self._run(list(command), validate_files(files), data, limits or self.limits)

    @abc.abstractmethod
    def _run(
        self, command: list[str], files: dict[str, bytes], stdin: bytes, limits: Limits
    ) -> ExecutionResult:
        """The backend's execution of an already checked request."""

    def run_python(
        self,
        code: str,
        *,
        stdin: str | bytes = b"",
        files: Mapping[str, str | bytes] | None = None,
        args: Sequence[str] = (),
        limits: Limits | None = None,
    ) -> ExecutionResult:
        """Run a Python program (`code` as `/work/main.py`) in isolated mode (`python -I`)."""
        all_files = {**(files or {}), "main.py": code}
        return self.run([self.python, "-I", "main.py", *args], files=all_files, stdin=stdin, limits=limits)

    def session(
        self, *, files: Mapping[str, str | bytes] | None = None, limits: Limits | None = None
    ) -> SandboxSession:
        """A `SandboxSession` whose work dir starts with `files`; it holds one of the sandbox's
        `max_concurrency` slots until it is closed (waiting `SESSION_SLOT_WAIT_S` for a free one)."""
        if self._closed:
            raise SandboxError("this sandbox is closed")
        return self._session(validate_files(files), limits or self.limits)

    def _session(self, files: dict[str, bytes], limits: Limits) -> SandboxSession:
        """The backend's session, started with `files` in its work dir."""
        raise SandboxUnavailableError(f"the {self.name} sandbox backend has no sessions")

    def _no_free_slot(self) -> SandboxError:
        """The error of a session that found every slot busy for `SESSION_SLOT_WAIT_S`."""
        return SandboxError(
            f"no free sandbox slot within {SESSION_SLOT_WAIT_S:.0f} s: all {self.max_concurrency} are "
            "busy (sessions hold theirs until closed); raise max_concurrency"
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (containers, cgroups); idempotent."""

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SESSION_SLOT_WAIT_S = 60.0
"""How long `Sandbox.session` waits for a free slot before it gives up (sessions hold theirs)."""


def session_fixed(limits: Limits) -> tuple[int, int, int]:
    """The limits a session fixes when it starts: (memory_mb, max_processes, disk_mb)."""
    return (limits.memory_mb, limits.max_processes, limits.disk_mb)


class SandboxSession(abc.ABC):
    """Executions that share one sandbox: what one leaves in `/work` and `/tmp` the next sees.

    Everything else is as for `Sandbox.run`: each execution starts in `/work` with a cleared
    environment, has its own time, CPU, output, file-size and open-file limits, and every process it
    started is killed when it ends (nothing keeps running between executions). The memory, process
    and disk limits are those of the session's start and hold for every execution. `close()` ends
    the session's sandbox; no file of it is seen by any later execution or session.
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def run(
        self, command: Sequence[str], *, stdin: str | bytes = b"", limits: Limits | None = None
    ) -> ExecutionResult:
        """Run `command` (an argv list) in `/work`, feeding `stdin`; `limits` may change the
        per-execution limits only (memory, processes and disk are the session's)."""
        if self._closed:
            raise SandboxError("this sandbox session is closed")
        if isinstance(command, str) or not command or not all(isinstance(a, str) for a in command):
            raise TypeError("command must be a non-empty list of strings (an argv), not a shell string")
        limits = limits or self.limits
        if session_fixed(limits) != session_fixed(self.limits):
            raise ValueError(
                "a session's memory_mb, max_processes and disk_mb are fixed when it starts: "
                f"{session_fixed(self.limits)}, got {session_fixed(limits)}"
            )
        data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        return self._run(list(command), data, limits)

    @abc.abstractmethod
    def _run(self, command: list[str], stdin: bytes, limits: Limits) -> ExecutionResult:
        """The backend's execution of an already checked request."""

    @abc.abstractmethod
    def close(self) -> None:
        """End the session: kill its processes, drop its files, give its slot back; idempotent."""

    def __enter__(self) -> SandboxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
