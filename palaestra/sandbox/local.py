"""The `local` sandbox backend: Linux namespaces through bubblewrap, no daemon.

Each execution runs as:

    /bin/sh (launcher, as the caller)  sets rlimits, joins the slot's cgroups
      -> setpriv --reuid=U --regid=U     (only when the caller is root) drops to the slot's own uid
        -> bwrap                          new user/pid/net/ipc/uts/cgroup namespaces
          -> the program                  in /work, a fresh tmpfs, with /usr read-only

Why each part (measured on Debian 12 as root in a container, cgroups v1 writable, no CAP_SYS_RESOURCE):
    - bubblewrap as root does not cap forks: root ignores RLIMIT_NPROC. Started as an unprivileged uid
      it does, so a root caller drops to a per-slot uid (`uid_base + slot`; no passwd entry needed) and
      concurrent executions never share a process budget or can signal each other.
    - The program is the pid namespace's init (`--as-pid-1`): when it exits or is killed, every
      process it left behind (background sleepers, spinning children) is killed by the kernel, and
      the slot's cgroup is swept as well, as a second line. (With bubblewrap's own reaper as pid 1
      instead, that reaper outlives the outer bwrap for an instant and is left as a zombie of the
      host's init, which counts against the slot uid's process limit until reaped; some container
      inits never reap it.)
    - The network namespace holds only a loopback of its own: the host's 127.0.0.1 and the outside
      world are unreachable.
    - The file system is /usr (plus the interpreter's prefix if it lives elsewhere) read-only, a fresh
      /proc showing only the sandbox's processes, a minimal /dev, and tmpfs /work and /tmp sized by
      `Limits.disk_mb`; / is remounted read-only. /etc, /root, /home and the caller's files are absent.
      Input files go in through memfds (`bwrap --file`), so nothing is staged on the host's disk.
    - The environment is cleared; `--disable-userns` forbids nested user namespaces (so `unshare` and
      `setns` through ctypes fail); hard rlimits cannot be raised without CAP_SYS_RESOURCE.
    - Memory: the slot's cgroup (memory + swap) where cgroups are writable, else RLIMIT_AS.

Warm slots (`warm=True`, the default): after an execution, each slot starts its next sandbox in the
background (launcher, namespaces, mounts and `python3 -I` up, waiting on stdin; see
`palaestra.sandbox._loader`). The next call hands it the job, so the caller does not wait for the
start-up. Each standby serves exactly one execution and has run no code before it, so this is as
isolated as a cold start; calls with other limits than the standby's start cold.

Fallback without bubblewrap (`isolation="unshare"`): util-linux `unshare` for the network, pid, ipc,
uts and mount namespaces, a private tmpfs over /tmp, /var/tmp and /run/lock, the slot uid, rlimits and
cgroups. The host's file system stays visible (protected by permissions only) and the program may
still create new, empty user namespaces (more kernel attack surface), so this is weaker: it is
refused unless `allow_weak_isolation=True`, and warns loudly when used.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import marshal
import math
import os
import queue
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from palaestra.sandbox.api import (
    WORK_DIR,
    ExecutionResult,
    LimitKind,
    Limits,
    OutputBuffer,
    Sandbox,
    SandboxError,
    SandboxUnavailableError,
)
from palaestra.sandbox.cgroups import SlotCgroup

_LOADER = (Path(__file__).parent / "_loader.py").read_text(encoding="utf-8")
LOADER_PATH = "/palaestra-loader.py"
"""Where a warm sandbox's loader lies inside it (read-only)."""

__all__ = ["DEFAULT_UID_BASE", "Isolation", "LocalSandbox", "WeakIsolationWarning", "detect_isolation"]

logger = logging.getLogger(__name__)

Isolation = Literal["auto", "bubblewrap", "unshare"]
DEFAULT_UID_BASE = 420_000
"""First uid of the slots when running as root (uids without a passwd entry, far from real users)."""
_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
_BWRAP_OVERHEAD_PROCS = 2  # the outer bwrap and the program (the namespace's init)


def _cpu_rlimit(limits: Limits) -> int:
    """Whole seconds of RLIMIT_CPU's soft limit for `limits.cpu_time_s` (the kernel counts seconds)."""
    return max(1, math.ceil(limits.cpu_time_s))


_WORLD_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/run/lock", "/dev/shm", "/dev/mqueue")


class WeakIsolationWarning(UserWarning):
    """The sandbox runs without bubblewrap: host files are visible to the program."""


def detect_isolation() -> Literal["bubblewrap", "unshare"] | None:
    """The strongest isolation this machine offers: "bubblewrap", "unshare" or None."""
    if shutil.which("bwrap"):
        return "bubblewrap"
    if shutil.which("unshare"):
        return "unshare"
    return None


@dataclass
class _Launch:
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

    def stop(self, slot: _Slot) -> tuple[int, int, Any]:
        """Kill the execution, program first, and reap the launcher (`os.wait4`'s result).

        The program dies first so that its parent, the outer bwrap, reaps it: killed the other way
        round, the orphaned program would be left as a zombie of the host's init, and count against
        the slot uid's process limit until something reaps it.
        """
        match = re.search(rb'"child-pid":\s*(\d+)', self.read_status())
        victims = [int(match[1])] if match else []
        if slot.cgroup is not None:
            victims += [pid for pid in slot.cgroup.pids() if pid != self.proc.pid]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        reaped = _wait_until(self.proc.pid, time.monotonic() + (1.0 if victims else 0.0))
        if reaped is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            if slot.cgroup is not None:
                slot.cgroup.kill_all()
            reaped = os.wait4(self.proc.pid, 0)
        return reaped

    def close_pipes(self) -> None:
        for stream in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self.info_r is not None:
            with contextlib.suppress(OSError):
                os.close(self.info_r)
            self.info_r = None

    def discard(self, slot: _Slot) -> None:
        """Kill an unused standby and reap it."""
        with contextlib.suppress(ChildProcessError):
            self.stop(slot)
        self.close_pipes()


@dataclass
class _Slot:
    index: int
    uid: int
    cgroup: SlotCgroup | None
    standby: _Launch | None = None


def _default_python() -> str:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return os.path.realpath(sys.executable)


def _world_traversable(path: str) -> bool:
    """Whether every directory above `path` lets other users through (o+x)."""
    parts = Path(os.path.abspath(path)).parents
    return all(os.stat(p).st_mode & 0o001 for p in parts)


def _bind_system_dirs() -> list[str]:
    """bwrap args for /usr and the merged-usr links (or binds) /bin, /sbin, /lib, /lib64."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{top}"]
    return args


class LocalSandbox(Sandbox):
    """Runs programs in bubblewrap namespaces on this machine (see the module docstring).

    Args:
        limits: default limits of every execution (each call may pass its own).
        max_concurrency: executions at once; each slot has its own uid and cgroup.
        isolation: "auto" (bubblewrap, else unshare), "bubblewrap" or "unshare".
        allow_weak_isolation: permit the `unshare` fallback (it leaves host files readable).
        python: interpreter for `run_python` (default /usr/bin/python3; a Python under a directory
            other users cannot enter, such as /root/.pyenv, cannot be used by the sandbox uid).
        warm: keep one sandbox per slot started ahead of time (see "Warm slots" above).
        uid_base: base of the slot uids when running as root (each process takes a block of 1024
            uids above it, chosen by pid; each sandbox in the process takes its slots from the block).

    Raises:
        SandboxUnavailableError: the isolation asked for is not available, or only the weak fallback
            is and `allow_weak_isolation` is False.
    """

    name = "local"

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        max_concurrency: int = 4,
        isolation: Isolation = "auto",
        allow_weak_isolation: bool = False,
        python: str | None = None,
        uid_base: int = DEFAULT_UID_BASE,
        warm: bool = True,
    ):
        super().__init__(limits=limits, max_concurrency=max_concurrency)
        found = detect_isolation()
        if isolation == "auto":
            if found is None:
                raise SandboxUnavailableError(
                    "no isolation tool found: install bubblewrap (Debian: apt-get install bubblewrap)"
                )
            isolation = found
        if isolation == "bubblewrap" and not shutil.which("bwrap"):
            raise SandboxUnavailableError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        if isolation == "unshare":
            if not shutil.which("unshare"):
                raise SandboxUnavailableError("util-linux `unshare` is not installed")
            if not allow_weak_isolation:
                raise SandboxUnavailableError(
                    "bubblewrap is missing and the `unshare` fallback leaves the host's files readable to "
                    "the program; install bubblewrap (apt-get install bubblewrap) or pass "
                    "allow_weak_isolation=True to accept the weaker isolation"
                )
            warnings.warn(
                "palaestra sandbox: running WITHOUT bubblewrap (unshare fallback): programs can read "
                "world-readable host files. Install bubblewrap for full isolation.",
                WeakIsolationWarning,
                stacklevel=2,
            )
        self.isolation: Literal["bubblewrap", "unshare"] = isolation
        self.is_root = os.geteuid() == 0
        if self.is_root and not shutil.which("setpriv"):
            raise SandboxUnavailableError("running as root needs util-linux `setpriv` to drop to a slot uid")
        self.python = python or _default_python()
        if not os.access(self.python, os.X_OK):
            raise SandboxUnavailableError(f"python={self.python!r} is not an executable file")
        if self.is_root:
            self._check_interpreter(self.python)
        self._python_prefix = self._interpreter_prefix(self.python)
        self._system_binds = _bind_system_dirs()
        self._slots: queue.LifoQueue[_Slot] = queue.LifoQueue()
        self._all_slots: list[_Slot] = []
        self._run_id = f"{os.getpid()}-{id(self):x}"
        uids = _allocate_uids(uid_base, max_concurrency)
        for index in range(max_concurrency):
            uid = uids[index] if self.is_root else os.getuid()
            cgroup = SlotCgroup.create(f"{self._run_id}-{index}") if self.is_root else None
            slot = _Slot(index, uid, cgroup)
            self._all_slots.append(slot)
            self._slots.put(slot)
        self.cgroups = all(s.cgroup is not None for s in self._all_slots)
        if not self.cgroups:
            logger.info("sandbox: cgroups not writable here; memory is limited by RLIMIT_AS instead")
        self._warm = warm and self.isolation == "bubblewrap"
        self._refiller = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrency, thread_name_prefix="palaestra-sandbox-standby"
        )
        self._closed = False
        self._lock = threading.Lock()

    @staticmethod
    @staticmethod
    def _check_interpreter(python: str) -> None:
        """Refuse an interpreter the slot uids cannot reach (e.g. under root's 0700 home)."""
        for path in {python, os.path.realpath(python)}:
            if not _world_traversable(path):
                raise SandboxUnavailableError(
                    f"python={python!r} lies under a directory the sandbox uid cannot enter; use a "
                    "system interpreter (e.g. /usr/bin/python3: apt-get install python3-minimal)"
                )

    @staticmethod
    def _interpreter_prefix(python: str) -> str | None:
        real = os.path.realpath(python)
        if real.startswith("/usr/"):
            return None
        return str(Path(real).parent.parent)  # <prefix>/bin/python3 -> <prefix>

    # -- command construction ----------------------------------------------------------------------
    def _launcher_script(self, slot: _Slot, limits: Limits, *, nproc: int) -> str:
        lines = [
            "set -e",  # a limit that cannot be set stops the launch
            "ulimit -c 0",
            # RLIMIT_CPU: SIGXCPU at the soft limit (unambiguous, see `_limit_from_status`); the hard
            # limit one second later SIGKILLs a program that handles SIGXCPU
            f"ulimit -S -t {_cpu_rlimit(limits)}",
            f"ulimit -H -t {_cpu_rlimit(limits) + 1}",
            f"ulimit -f {limits.max_file_size_mb * 2048}",  # 512-byte blocks
            f"ulimit -n {limits.max_open_files}",
            f"ulimit -p {nproc}",
        ]
        if slot.cgroup is None:
            # RLIMIT_AS counts address space, not memory: leave room for the interpreter's mappings
            lines.append(f"ulimit -v {(limits.memory_mb + 64) * 1024}")
        else:
            lines += [f"echo $$ > {shlex.quote(str(p))} || exit 125" for p in slot.cgroup.procs_files]
        lines.append('exec "$@"')
        return "\n".join(lines)

    def _bwrap_args(
        self, limits: Limits, files: dict[str, bytes], fds: list[int], info_fd: int, loader_fd: int | None
    ) -> list[str]:
        size = str(limits.disk_mb * 1024 * 1024)
        args = [
            "bwrap",
            "--json-status-fd",
            str(info_fd),
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--as-pid-1",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
            *self._system_binds,
        ]
        if self._python_prefix is not None:
            args += ["--ro-bind", self._python_prefix, self._python_prefix]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", WORK_DIR]
        dirs = sorted({str(Path(name).parent) for name in files} - {"."})
        for d in dirs:
            for parent in [*reversed(Path(d).parents[:-1]), Path(d)]:
                args += ["--dir", f"{WORK_DIR}/{parent}"]
        for (name, _), fd in zip(files.items(), fds, strict=True):
            args += ["--perms", "0644", "--file", str(fd), f"{WORK_DIR}/{name}"]
        if loader_fd is not None:
            args += ["--perms", "0444", "--ro-bind-data", str(loader_fd), LOADER_PATH]
        args += [
            "--remount-ro",
            "/",
            "--chdir",
            WORK_DIR,
            "--clearenv",
            "--setenv",
            "PATH",
            _SYSTEM_PATH,
            "--setenv",
            "HOME",
            WORK_DIR,
            "--setenv",
            "TMPDIR",
            "/tmp",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--",
        ]
        return args

    def _unshare_args(self, limits: Limits, workdir: str) -> list[str]:
        size = f"size={limits.disk_mb}m"
        private_tmp = " && ".join(
            f"mount -t tmpfs -o {size},mode=1777 tmpfs {d}" for d in _WORLD_WRITABLE_DIRS if os.path.isdir(d)
        )
        # runs as root inside the new namespaces, before the uid drop
        return [
            "unshare",
            *([] if self.is_root else ["--map-root-user"]),
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount",
            "--mount-proc",
            "--ipc",
            "--uts",
            "--",
            "/bin/sh",
            "-c",
            # no exec: this shell reports a signal death as 128+N (unshare --fork itself fails to)
            f'{{ {private_tmp} && cd {shlex.quote(workdir)}; }} || exit 125\n"$@"\nexit $?',
            "sh",
        ]

    def _argv(
        self,
        slot: _Slot,
        limits: Limits,
        command: Sequence[str],
        files: dict[str, bytes],
        fds: list[int],
        workdir: str | None,
        info_fd: int,
    ) -> list[str]:
        drop = (
            [
                "setpriv",
                f"--reuid={slot.uid}",
                f"--regid={slot.uid}",
                "--clear-groups",
                "--no-new-privs",
                "--",
            ]
            if self.is_root
            else []
        )
        if self.isolation == "bubblewrap":
            loader_fd = fds[len(files)] if len(fds) == len(files) + 2 else None
            inner = [*drop, *self._bwrap_args(limits, files, fds[: len(files)], info_fd, loader_fd), *command]
        else:
            assert workdir is not None
            env = ["env", "-i", f"PATH={_SYSTEM_PATH}", f"HOME={workdir}", "TMPDIR=/tmp", "LANG=C.UTF-8"]
            inner = [*self._unshare_args(limits, workdir), *drop, *env, *command]
        nproc = limits.max_processes + _BWRAP_OVERHEAD_PROCS
        if not self.is_root:
            nproc += _count_processes(os.getuid())
        return ["/bin/sh", "-c", self._launcher_script(slot, limits, nproc=nproc), "sh", *inner]

    # -- execution ---------------------------------------------------------------------------------
    def _run(
        self, command: list[str], files: dict[str, bytes], stdin: bytes, limits: Limits
    ) -> ExecutionResult:
        slot = self._slots.get()
        try:
            if self._warm:
                result = self._run_warm(slot, command, files, stdin, limits)
            else:
                result = self._run_cold(slot, command, files, stdin, limits)
        except BaseException:
            self._release(slot, None)
            raise
        self._release(slot, limits if self._warm else None)
        return result

    def _release(self, slot: _Slot, refill_limits: Limits | None) -> None:
        """Sweep the slot and give it back; with `refill_limits`, start its next standby first (in
        the background, so the caller does not wait)."""
        if refill_limits is None or self._closed:
            self._sweep(slot)
            self._slots.put(slot)
            return

        def refill() -> None:
            try:
                self._sweep(slot)
                if not self._closed:
                    slot.standby = self._launch_standby(slot, refill_limits)
            except Exception:  # the next run starts cold and reports any real failure
                logger.exception("sandbox slot %d: could not start a standby sandbox", slot.index)
            finally:
                self._slots.put(slot)

        try:
            self._refiller.submit(refill)
        except RuntimeError:  # shut down: closing
            self._sweep(slot)
            self._slots.put(slot)

    def _sweep(self, slot: _Slot) -> None:
        if slot.cgroup is not None and not slot.cgroup.kill_all():
            logger.error("sandbox slot %d: processes survive SIGKILL: %s", slot.index, slot.cgroup.pids())

    def _run_cold(
        self, slot: _Slot, command: list[str], files: dict[str, bytes], stdin: bytes, limits: Limits
    ) -> ExecutionResult:
        workdir = self._host_workdir(slot, files) if self.isolation == "unshare" else None
        try:
            launch = self._launch(slot, limits, command, files, workdir=workdir)
            return self._collect(slot, launch, stdin, limits)
        finally:
            if workdir is not None:
                shutil.rmtree(Path(workdir).parent, ignore_errors=True)

    def _run_warm(
        self, slot: _Slot, command: list[str], files: dict[str, bytes], stdin: bytes, limits: Limits
    ) -> ExecutionResult:
        standby, slot.standby = slot.standby, None
        if standby is None or standby.limits != limits or standby.proc.poll() is not None:
            if standby is not None:
                standby.discard(slot)
                self._sweep(slot)
            standby = self._launch_standby(slot, limits)
        job = marshal.dumps((command, list(files.items())), 4)
        return self._collect(slot, standby, len(job).to_bytes(8, "big") + job + stdin, limits)

    def _launch(
        self,
        slot: _Slot,
        limits: Limits,
        command: list[str],
        files: dict[str, bytes],
        *,
        workdir: str | None = None,
        standby: bool = False,
    ) -> _Launch:
        """Start the launcher chain for `command` in `slot` (its cgroup prepared for `limits`);
        `standby`: mount the loader too."""
        if slot.cgroup is not None:
            slot.cgroup.prepare(
                memory_bytes=limits.memory_mb * 1024 * 1024,
                max_pids=limits.max_processes + _BWRAP_OVERHEAD_PROCS,
            )
        fds: list[int] = []
        info_r: int | None = None
        try:
            if self.isolation == "bubblewrap":
                for name, content in files.items():
                    fds.append(_memfd(f"palaestra-{name.replace('/', '_')}", content))
                if standby:
                    fds.append(_memfd("palaestra-loader", _LOADER.encode()))
                info_r, info_w = os.pipe()  # bwrap's JSON status: the program's exit code once it ran
                fds.append(info_w)
            argv = self._argv(slot, limits, command, files, fds, workdir, fds[-1] if fds else -1)
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=fds,
                start_new_session=True,
                env={"PATH": _SYSTEM_PATH, "LANG": "C.UTF-8"},
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
        return _Launch(proc, info_r, limits)

    def _launch_standby(self, slot: _Slot, limits: Limits) -> _Launch:
        return self._launch(slot, limits, [self.python, "-I", LOADER_PATH], {}, standby=True)

    def _collect(self, slot: _Slot, launch: _Launch, stdin: bytes, limits: Limits) -> ExecutionResult:
        """Feed `stdin`, collect the output under `limits`, reap the launcher and judge the result."""
        proc = launch.proc
        out, err = OutputBuffer(limits.max_output_bytes), OutputBuffer(limits.max_output_bytes)
        start = time.monotonic()
        deadline = start + limits.wall_time_s
        try:
            stopped_by = _pump(proc, stdin, deadline, out, err)
            reaped = None if stopped_by is not None else _wait_until(proc.pid, deadline)
            if reaped is None:
                stopped_by = stopped_by or "wall_time"
                reaped = launch.stop(slot)
            _, status, rusage = reaped
            proc.returncode = os.waitstatus_to_exitcode(status)
            duration = time.monotonic() - start
            started = launch.program_ran if launch.info_r is not None else None
        finally:
            launch.close_pipes()
        exit_code, sig = _decode_status(proc.returncode)
        if started is None:
            started = exit_code != 125
        if not started and stopped_by is None:
            raise SandboxError(f"the sandbox failed to start: {err.text().strip()}")
        usage = slot.cgroup.usage() if slot.cgroup is not None else None
        # the larger of the two counts: the launcher's rusage includes every process it reaped, the
        # cgroup's counter also what escaped it, and either alone has read low on a loaded machine
        cpu_s = rusage.ru_utime + rusage.ru_stime
        if usage is not None and usage.cpu_time_s is not None:
            cpu_s = max(cpu_s, usage.cpu_time_s)
        limit = stopped_by or _limit_from_status(exit_code, sig, err.text(), cpu_s, limits, usage)
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

    def leftover_processes(self) -> list[int]:
        """Processes running as this sandbox's slot uids that are not an idle standby sandbox.

        Between executions this is empty unless a program escaped the cleanup (the attack suite
        checks it). Only meaningful as root, where every slot has its own uid.
        """
        if not self.is_root:
            return []
        uids = {slot.uid for slot in self._all_slots}
        standby_roots = {slot.standby.proc.pid for slot in self._all_slots if slot.standby is not None}
        parents: dict[int, int] = {}
        owned: list[int] = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            pid = int(entry.name)
            parents[pid] = int(fields["PPid"])
            exited = fields["State"].split()[0] in ("Z", "X")  # dead, only waiting to be reaped
            if int(fields["Uid"].split()[0]) in uids and not exited:
                owned.append(pid)

        def in_standby(pid: int) -> bool:
            for _ in range(64):
                if pid in standby_roots:
                    return True
                if pid not in parents or pid <= 1:
                    return False
                pid = parents[pid]
            return False

        return sorted(pid for pid in owned if not in_standby(pid))

    def _host_workdir(self, slot: _Slot, files: dict[str, bytes]) -> str:
        """The unshare fallback's work dir: a fresh directory owned by the slot uid."""
        # not under /tmp: the fallback mounts a private tmpfs over the world-writable dirs
        parent = (
            "/run/palaestra-sandbox" if self.is_root else os.path.expanduser("~/.cache/palaestra-sandbox")
        )
        os.makedirs(parent, mode=0o711, exist_ok=True)
        base = tempfile.mkdtemp(prefix="run-", dir=parent)
        os.chmod(base, 0o711)
        work = Path(base) / "work"
        work.mkdir(mode=0o700)
        for name, content in files.items():
            path = work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        for root, dirnames, filenames in os.walk(work):
            for entry in [root, *(os.path.join(root, n) for n in dirnames + filenames)]:
                os.chown(entry, slot.uid, slot.uid)
        return str(work)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._refiller.shutdown(wait=True)
        for slot in self._all_slots:
            if slot.standby is not None:
                slot.standby.discard(slot)
                slot.standby = None
            if slot.cgroup is not None:
                slot.cgroup.remove()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


_uid_lock = threading.Lock()
_uids_handed_out = 0
_UIDS_PER_PROCESS = 1024


def _allocate_uids(base: int, count: int) -> list[int]:
    """Slot uids no other sandbox of this process (nor, by pid, of another process) shares."""
    global _uids_handed_out
    with _uid_lock:
        start = _uids_handed_out
        _uids_handed_out += count
    block = base + (os.getpid() % 4096) * _UIDS_PER_PROCESS
    return [block + (start + i) % _UIDS_PER_PROCESS for i in range(count)]


def _memfd(name: str, content: bytes) -> int:
    """An inheritable in-memory file holding `content`, positioned at its start (for bwrap)."""
    fd = os.memfd_create(name, 0)  # no MFD_CLOEXEC: the launcher passes it on
    os.write(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _count_processes(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += 1
    return count


def _pump(
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


def _wait_until(pid: int, deadline: float) -> tuple[int, int, object] | None:
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


def _decode_status(returncode: int) -> tuple[int | None, int | None]:
    """(exit_code, signal): bubblewrap reports a program killed by signal N as exit status 128+N."""
    if returncode < 0:
        return None, -returncode
    if 128 < returncode <= 128 + 64:
        return None, returncode - 128
    return returncode, None


def _limit_from_status(
    exit_code: int | None,
    sig: int | None,
    stderr: str,
    cpu_s: float,
    limits: Limits,
    usage,
) -> LimitKind | None:
    failed = exit_code != 0
    # Only RLIMIT_CPU's soft limit sends SIGXCPU. The kernel checks that limit against CPU time
    # sampled at timer ticks, which on a loaded machine runs well ahead of the exact time `cpu_s`
    # measures (a program killed at 1 s sampled had used 0.85 s), so `cpu_s` cannot tell this case.
    if sig == signal.SIGXCPU:
        return "cpu_time"
    # the hard limit, one second later (a program that handled SIGXCPU, or a non-Python command as
    # PID 1 of its namespace, which ignores it): killed with at least half the hard limit used, even
    # if the sampled time ran twice as fast as the exact one
    if sig == signal.SIGKILL and cpu_s >= 0.5 * (_cpu_rlimit(limits) + 1):
        return "cpu_time"
    if usage is not None and usage.memory_limit_hit and (sig == signal.SIGKILL or "MemoryError" in stderr):
        return "memory"
    if failed and "MemoryError" in stderr:
        return "memory"
    if usage is not None and usage.pids_limit_hit:
        return "processes"
    if failed and ("BlockingIOError: [Errno 11]" in stderr or "Resource temporarily unavailable" in stderr):
        return "processes"
    if sig == signal.SIGXFSZ or (failed and "File too large" in stderr):
        return "file_size"
    if failed and "No space left on device" in stderr:
        return "disk"
    return None
