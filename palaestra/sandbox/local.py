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
      `Limits.disk_mb`; / is remounted read-only. /root, /home, the caller's files and /etc (but for
      /etc/alternatives, Debian's command links such as awk -> mawk) are absent.
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

The parts live in their own modules: `local_argv` (the command line), `local_process` (spawning,
waiting, killing, CPU accounting), `local_slots` (slot uids and cgroups, warm standbys) and
`local_session` (sessions: one bwrap kept for a sequence of executions sharing its work dir).
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import queue
import shutil
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Literal

from palaestra.sandbox.api import (
    SESSION_SLOT_WAIT_S,
    ExecutionResult,
    Limits,
    Sandbox,
    SandboxSession,
    SandboxUnavailableError,
)
from palaestra.sandbox.local_argv import LOADER_PATH, LocalCommandLine, bind_system_dirs, interpreter_prefix
from palaestra.sandbox.local_process import Launch, collect, spawn
from palaestra.sandbox.local_session import LocalSession
from palaestra.sandbox.local_slots import Slot, SlotPool

_LOADER = (Path(__file__).parent / "_loader.py").read_text(encoding="utf-8").encode()

__all__ = ["DEFAULT_UID_BASE", "Isolation", "LocalSandbox", "WeakIsolationWarning", "detect_isolation"]

logger = logging.getLogger(__name__)

Isolation = Literal["auto", "bubblewrap", "unshare"]
DEFAULT_UID_BASE = 420_000
"""First uid of the slots when running as root (uids without a passwd entry, far from real users)."""


class WeakIsolationWarning(UserWarning):
    """The sandbox runs without bubblewrap: host files are visible to the program."""


def detect_isolation() -> Literal["bubblewrap", "unshare"] | None:
    """The strongest isolation this machine offers: "bubblewrap", "unshare" or None."""
    if shutil.which("bwrap"):
        return "bubblewrap"
    if shutil.which("unshare"):
        return "unshare"
    return None


def _default_python() -> str:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return os.path.realpath(sys.executable)


def _world_traversable(path: str) -> bool:
    """Whether every directory above `path` lets other users through (o+x)."""
    parts = Path(os.path.abspath(path)).parents
    return all(os.stat(p).st_mode & 0o001 for p in parts)


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
        self.command_line = LocalCommandLine(
            self.isolation, self.is_root, bind_system_dirs(), interpreter_prefix(self.python)
        )
        """Builds each execution's argv (see `palaestra.sandbox.local_argv`)."""
        self.slot_pool = SlotPool(
            max_concurrency,
            run_id=f"{os.getpid()}-{id(self):x}",
            uid_base=uid_base,
            own_uids=self.is_root,
            start_standby=self._launch_standby,
        )
        """The slots: uids, cgroups and warm standbys (see `palaestra.sandbox.local_slots`)."""
        self.cgroups = all(s.cgroup is not None for s in self.slot_pool.slots)
        if not self.cgroups:
            logger.info("sandbox: cgroups not writable here; memory is limited by RLIMIT_AS instead")
        self._warm = warm and self.isolation == "bubblewrap"
        self._closed = False
        self._lock = threading.Lock()

    @staticmethod
    def _check_interpreter(python: str) -> None:
        """Refuse an interpreter the slot uids cannot reach (e.g. under root's 0700 home)."""
        for path in {python, os.path.realpath(python)}:
            if not _world_traversable(path):
                raise SandboxUnavailableError(
                    f"python={python!r} lies under a directory the sandbox uid cannot enter; use a "
                    "system interpreter (e.g. /usr/bin/python3: apt-get install python3-minimal)"
                )

    # -- execution ---------------------------------------------------------------------------------
    def _run(
        self, command: list[str], files: dict[str, bytes], stdin: bytes, limits: Limits
    ) -> ExecutionResult:
        slot = self.slot_pool.acquire()
        try:
            if self._warm:
                result = self._run_warm(slot, command, files, stdin, limits)
            else:
                result = self._run_cold(slot, command, files, stdin, limits)
        except BaseException:
            self.slot_pool.release(slot, None)
            raise
        self.slot_pool.release(slot, limits if self._warm else None)
        return result

    def _run_cold(
        self, slot: Slot, command: list[str], files: dict[str, bytes], stdin: bytes, limits: Limits
    ) -> ExecutionResult:
        workdir = self._host_workdir(slot, files) if self.isolation == "unshare" else None
        try:
            launch = spawn(
                self.command_line,
                uid=slot.uid,
                cgroup=slot.cgroup,
                limits=limits,
                command=command,
                files=files,
                workdir=workdir,
            )
            return collect(launch, slot.cgroup, stdin, limits)
        finally:
            if workdir is not None:
                shutil.rmtree(Path(workdir).parent, ignore_errors=True)

    def _run_warm(
        self, slot: Slot, command: list[str], files: dict[str, bytes], stdin: bytes, limits: Limits
    ) -> ExecutionResult:
        standby = self.slot_pool.take_standby(slot, limits)
        job = marshal.dumps((command, list(files.items())), 4)
        return collect(standby, slot.cgroup, len(job).to_bytes(8, "big") + job + stdin, limits)

    def _launch_standby(self, slot: Slot, limits: Limits) -> Launch:
        """Start a sandbox for `slot` up to its loader, which waits for one job on stdin."""
        return spawn(
            self.command_line,
            uid=slot.uid,
            cgroup=slot.cgroup,
            limits=limits,
            command=[self.python, "-I", LOADER_PATH],
            files={},
            loader=_LOADER,
        )

    # -- sessions ----------------------------------------------------------------------------------
    def _session(self, files: dict[str, bytes], limits: Limits) -> SandboxSession:
        """A `LocalSession`: one bwrap sandbox kept for the session (see `palaestra.sandbox.local_session`)."""
        if self.isolation != "bubblewrap":
            raise SandboxUnavailableError("sandbox sessions need bubblewrap (the unshare fallback has none)")
        try:
            slot = self.slot_pool.acquire(timeout=SESSION_SLOT_WAIT_S)
        except queue.Empty:
            raise self._no_free_slot() from None
        try:
            standby, slot.standby = slot.standby, None
            if standby is not None:
                standby.discard(slot.cgroup)
            return LocalSession(
                command_line=self.command_line,
                python=self.python,
                slot=slot,
                limits=limits,
                files=files,
                release=lambda s: self.slot_pool.release(s, None),
                in_worker=self.slot_pool.in_worker,
            )
        except BaseException:
            self.slot_pool.release(slot, None)
            raise

    def leftover_processes(self) -> list[int]:
        """Processes running as this sandbox's slot uids that are not an idle standby sandbox.

        Between executions this is empty unless a program escaped the cleanup (the attack suite
        checks it). Only meaningful as root, where every slot has its own uid.
        """
        if not self.is_root:
            return []
        return self.slot_pool.leftover_processes()

    def _host_workdir(self, slot: Slot, files: dict[str, bytes]) -> str:
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
        self.slot_pool.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
