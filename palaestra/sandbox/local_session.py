"""The local backend's sessions: one long-lived bubblewrap sandbox per session, the agent as its PID 1.

A session's sandbox is started like any local execution (launcher, slot uid and cgroup, bwrap with
tmpfs /work and /tmp, no network, a cleared environment) but its program is the container backend's
agent (`_container_agent.py`), which then runs each of the session's commands the way it does in a
container: forked, with the per-execution rlimits, its output relayed as frames over the sandbox's
stdout, killed with everything it started when it ends or when the host asks (wall time, output).
The session's files live in that bwrap's tmpfs, so they persist across its commands and vanish with
it: `close()` kills the sandbox and sweeps the slot's cgroup.

The whole session counts against the slot's cgroup (memory, pids: the session's `Limits` plus the
agent's small share) and the launcher's RLIMIT_NPROC; the agent's CPU-time limit is the session's
lifetime budget (`AGENT_CPU_S`), each command's is `cpu_time_s`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable

from palaestra.sandbox.api import ExecutionResult, Limits, SandboxError, SandboxSession
from palaestra.sandbox.container_options import AGENT_MEMORY_MB, AGENT_PIDS, AGENT_SOURCE, agent_command
from palaestra.sandbox.container_protocol import (
    AgentFrames,
    ContainerDied,
    exchange,
    read_frames,
    run_request,
)
from palaestra.sandbox.local_argv import LocalCommandLine
from palaestra.sandbox.local_process import Launch, spawn
from palaestra.sandbox.local_slots import Slot

__all__ = ["AGENT_CPU_S", "LocalSession", "PipeChannel"]

AGENT_CPU_S = 3600.0
"""CPU time the session's agent itself may use (it idles in select between commands)."""
_START_TIMEOUT_S = 30.0
_KILL_GRACE_S = 5.0


class PipeChannel:
    """The agent's stdin and stdout pipes, seen as the socket `container_protocol` expects."""

    def __init__(self, proc: subprocess.Popen):
        assert proc.stdin is not None and proc.stdout is not None
        self._in, self._out = proc.stdin.fileno(), proc.stdout.fileno()

    def fileno(self) -> int:
        return self._out

    def recv(self, size: int, /) -> bytes:
        return os.read(self._out, size)

    def sendall(self, data: bytes, /) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._in, view) :]


class LocalSession(SandboxSession):
    """A session in one bubblewrap sandbox that lives until `close()` (see the module docstring).

    Args:
        command_line: the local sandbox's argv builder.
        python: the interpreter that runs the agent inside the sandbox.
        slot: the slot the session holds (uid, cgroup) until it closes.
        limits: the session's limits (each command's by default).
        files: the work dir's initial files.
        release: gives the slot back (called once, by `close`).
        in_worker: runs the spawn in a long-lived thread (bwrap dies with the thread that started it).
    """

    def __init__(
        self,
        *,
        command_line: LocalCommandLine,
        python: str,
        slot: Slot,
        limits: Limits,
        files: dict[str, bytes],
        release: Callable[[Slot], None],
        in_worker: Callable[[Callable[[], Launch]], Launch],
    ):
        super().__init__(limits)
        self._slot, self._release = slot, release
        self._lock = threading.Lock()
        sandbox_limits = limits.model_copy(
            update={
                "cpu_time_s": AGENT_CPU_S,
                "memory_mb": limits.memory_mb + AGENT_MEMORY_MB,
                "max_processes": limits.max_processes + AGENT_PIDS,
            }
        )
        self._launch = in_worker(
            lambda: spawn(
                command_line,
                uid=slot.uid,
                cgroup=slot.cgroup,
                limits=sandbox_limits,
                command=agent_command(python, slot.uid),
                files=files,
            )
        )
        self._channel = PipeChannel(self._launch.proc)
        self._frames = AgentFrames(multiplexed=False)
        try:
            self._channel.sendall(AGENT_SOURCE)
            deadline = time.monotonic() + _START_TIMEOUT_S
            if not any(kind == b"R" for kind, _ in read_frames(self._channel, self._frames, deadline)):
                raise SandboxError(f"the session's agent did not answer within {_START_TIMEOUT_S:.0f} s")
        except (ContainerDied, OSError) as exc:
            self.close()
            raise SandboxError(f"the sandbox session could not start: {exc} {self._stderr()}") from exc
        except BaseException:
            self.close()
            raise

    def _stderr(self) -> str:
        """What the launcher, bwrap or the agent wrote to the sandbox's stderr (why it failed)."""
        stream = self._launch.proc.stderr
        if stream is None:
            return ""
        os.set_blocking(stream.fileno(), False)
        with contextlib.suppress(OSError, TypeError):
            return (stream.read(8192) or b"").decode(errors="replace").strip()
        return ""

    def _run(self, command: list[str], stdin: bytes, limits: Limits) -> ExecutionResult:
        with self._lock:
            if self._closed:
                raise SandboxError("this sandbox session is closed")
            cgroup = self._slot.cgroup
            if cgroup is not None:
                cgroup.reset_counters()
            request = run_request(command, {}, stdin, limits, keep=True)
            ex = exchange(self._channel, self._frames, request, limits, kill_grace_s=_KILL_GRACE_S)
            if ex.lost is not None or ex.report is None:
                cause = f"{type(ex.lost).__name__}: {ex.lost} {self._stderr()}".strip()
                self._close_locked()
                if ex.stopped_by is None:
                    raise SandboxError(f"the sandbox session died during the execution ({cause})")
                return ex.killed(ex.stopped_by)
            if ex.report.setup_error:
                raise SandboxError(f"the sandbox failed to start the program: {ex.report.setup_error}")
            if not ex.report.clean:  # a process survived the kill: the session cannot go on safely
                self._close_locked()
            return ex.result(limits, cgroup.usage() if cgroup is not None else None)

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._launch.discard(self._slot.cgroup)
        finally:
            self._release(self._slot)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
