"""The local backend's processes: start the launcher chain, feed and drain it, wait, kill, account CPU time.

`spawn` starts one execution's launcher (input files and the loader passed as memfds, bwrap's JSON
status on a pipe) and returns a `Launch`; `collect` feeds its stdin, gathers its output under the
wall-time and output limits, kills it when one is hit (program first, then the launcher, then the
slot's cgroup) and turns what happened into an `ExecutionResult`.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from palaestra.sandbox.api import ExecutionResult, LimitKind, Limits, OutputBuffer, SandboxError
from palaestra.sandbox.cgroups import SlotCgroup
from palaestra.sandbox.exit_status import decode_status, limit_from_status
from palaestra.sandbox.local_argv import BWRAP_OVERHEAD_PROCS, SYSTEM_PATH, LocalCommandLine

if TYPE_CHECKING:
    from resource import struct_rusage

__all__ = ["Launch", "collect", "memfd", "pump", "spawn", "wait_until"]


@dataclass
class Launch:
    """A started launcher chain: the process, bwrap's JSON status pipe, the limits it was started with."""

    proc: subprocess.Popen
    info_r: int | None
    limits: Limits
    status: bytes = b""

    def read_status(self) -> bytes:
        """What bwrap has reported so far (`child-pid` at start, `exit-code` once the program ended)."""
        if self.info_r is not None:
            os.set_blocking(self.info_r, False)
            with contextlib.suppress(BlockingIOError, OSError):
                while chunk := os.read(self.info_r, 4096):
                    self.status += chunk
        return self.status

    @property
    def program_ran(self) -> bool:
        """bwrap writes the program's "exit-code" only when set-up succeeded and the program ran."""
        return b'"exit-code"' in self.read_status()

    def stop(self, cgroup: SlotCgroup | None) -> tuple[int, int, struct_rusage]:
        """Kill the execution, program first, and reap the launcher (`os.wait4`'s result).

        The program dies first so that its parent, the outer bwrap, reaps it: killed the other way
        round, the orphaned program would be left as a zombie of the host's init, and count against
        the slot uid's process limit until something reaps it.
        """
        match = re.search(rb'"child-pid":\s*(\d+)', self.read_status())
        victims = [int(match[1])] if match else []
        if cgroup is not None:
            victims += [pid for pid in cgroup.pids() if pid != self.proc.pid]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        reaped = wait_until(self.proc.pid, time.monotonic() + (1.0 if victims else 0.0))
        if reaped is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            if cgroup is not None:
                cgroup.kill_all()
            reaped = os.wait4(self.proc.pid, 0)
        return reaped

    def close_pipes(self) -> None:
        """Close our ends of the launcher's stdin, stdout, stderr and status pipe."""
        for stream in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self.info_r is not None:
            with contextlib.suppress(OSError):
                os.close(self.info_r)
            self.info_r = None

    def discard(self, cgroup: SlotCgroup | None) -> None:
        """Kill an unused standby (or a session's sandbox) and reap it."""
        with contextlib.suppress(ChildProcessError):
            _, status, _ = self.stop(cgroup)
            self.proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
        self.close_pipes()


def spawn(
    command_line: LocalCommandLine,
    *,
    uid: int,
    cgroup: SlotCgroup | None,
    limits: Limits,
    command: list[str],
    files: dict[str, bytes],
    workdir: str | None = None,
    loader: bytes | None = None,
) -> Launch:
    """Start the launcher chain for `command` as `uid`, its cgroup prepared for `limits`.

    Args:
        command_line: builds the argv.
        uid, cgroup: the slot's uid and cgroup (None where cgroups are not writable).
        limits: the execution's limits.
        command, files: the program's argv and input files (passed to bwrap as memfds).
        workdir: the unshare fallback's host work dir, holding `files` already.
        loader: the warm loader's source, to mount at `LOADER_PATH` (a standby sandbox), or None.

    Raises:
        SandboxError: the launcher could not be started.
    """
    if cgroup is not None:
        cgroup.prepare(
            memory_bytes=limits.memory_mb * 1024 * 1024,
            max_pids=limits.max_processes + BWRAP_OVERHEAD_PROCS,
        )
    fds: list[int] = []
    info_r: int | None = None
    try:
        if command_line.isolation == "bubblewrap":
            for name, content in files.items():
                fds.append(memfd(f"palaestra-{name.replace('/', '_')}", content))
            if loader is not None:
                fds.append(memfd("palaestra-loader", loader))
            info_r, info_w = os.pipe()  # bwrap's JSON status: the program's exit code once it ran
            fds.append(info_w)
        argv = command_line.argv(
            uid=uid,
            cgroup=cgroup,
            limits=limits,
            command=command,
            files=files,
            fds=fds,
            workdir=workdir,
            info_fd=fds[-1] if fds else -1,
        )
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=fds,
            start_new_session=True,
            env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
            cwd="/",
        )
    except OSError as exc:
        if info_r is not None:
            os.close(info_r)
        raise SandboxError(f"could not start the sandbox launcher: {exc}") from exc
    finally:
        for fd in fds:  # the launcher holds its copies; ours would keep the info pipe open
            with contextlib.suppress(OSError):
                os.close(fd)
    return Launch(proc, info_r, limits)


def collect(launch: Launch, cgroup: SlotCgroup | None, stdin: bytes, limits: Limits) -> ExecutionResult:
    """Feed `stdin`, collect the output under `limits`, reap the launcher and judge the result.

    Raises:
        SandboxError: the sandbox failed to start the program (and no limit explains it).
    """
    proc = launch.proc
    out, err = OutputBuffer(limits.max_output_bytes), OutputBuffer(limits.max_output_bytes)
    start = time.monotonic()
    deadline = start + limits.wall_time_s
    try:
        stopped_by = pump(proc, stdin, deadline, out, err)
        reaped = None if stopped_by is not None else wait_until(proc.pid, deadline)
        if reaped is None:
            stopped_by = stopped_by or "wall_time"
            reaped = launch.stop(cgroup)
        _, status, rusage = reaped
        proc.returncode = os.waitstatus_to_exitcode(status)
        duration = time.monotonic() - start
        started = launch.program_ran if launch.info_r is not None else None
    finally:
        launch.close_pipes()
    exit_code, sig = decode_status(proc.returncode)
    if started is None:
        started = exit_code != 125
    if not started and stopped_by is None:
        raise SandboxError(f"the sandbox failed to start: {err.text().strip()}")
    usage = cgroup.usage() if cgroup is not None else None
    # the larger of the two counts: the launcher's rusage includes every process it reaped, the
    # cgroup's counter also what escaped it, and either alone has read low on a loaded machine
    cpu_s = rusage.ru_utime + rusage.ru_stime
    if usage is not None and usage.cpu_time_s is not None:
        cpu_s = max(cpu_s, usage.cpu_time_s)
    limit = stopped_by or limit_from_status(exit_code, sig, err.text(), cpu_s, limits, usage)
    return ExecutionResult(
        stdout=out.text(),
        stderr=err.text(),
        exit_code=exit_code,
        signal=sig,
        duration_s=duration,
        limit=limit,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
    )


def memfd(name: str, content: bytes) -> int:
    """An inheritable in-memory file holding `content`, positioned at its start (for bwrap)."""
    fd = os.memfd_create(name, 0)  # no MFD_CLOEXEC: the launcher passes it on
    os.write(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def pump(
    proc: subprocess.Popen, stdin: bytes, deadline: float, out: OutputBuffer, err: OutputBuffer
) -> LimitKind | None:
    """Feed stdin and collect output until the pipes close; returns the limit that cut it short."""
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    targets = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    for fd in targets:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pending = memoryview(stdin)
    stdin_fd = proc.stdin.fileno()
    if pending:
        os.set_blocking(stdin_fd, False)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    open_reads = len(targets)
    try:
        while open_reads:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return "wall_time"
            for key, _ in sel.select(timeout):
                fd = key.fd
                if fd == stdin_fd:
                    try:
                        written = os.write(fd, pending[: 1 << 16])
                    except (BrokenPipeError, BlockingIOError) as exc:
                        written = 0 if isinstance(exc, BlockingIOError) else len(pending)
                    pending = pending[written:]
                    if not pending:
                        sel.unregister(fd)
                        proc.stdin.close()
                    continue
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    open_reads -= 1
                elif not targets[fd].feed(chunk):
                    return "output"
        return None  # output closed: the program exited or closed its pipes
    finally:
        sel.close()


def wait_until(pid: int, deadline: float) -> tuple[int, int, struct_rusage] | None:
    """Reap `pid` (os.wait4) if it exits before `deadline`, else None."""
    delay = 0.0002
    while True:
        reaped = os.wait4(pid, os.WNOHANG)
        if reaped[0] != 0:
            return reaped
        if time.monotonic() > deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
