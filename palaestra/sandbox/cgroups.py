"""Per-slot cgroups (v1 or v2) for sandboxed process trees: memory, pids and CPU accounting.

A `SlotCgroup` is a set of cgroup directories the sandbox creates once per concurrency slot and reuses:
limits are written before each execution, the launcher joins the cgroup before it drops privileges
(so every process of the execution is inside), and after the execution every process left in it is
killed. Where the cgroup filesystem is not writable (an unprivileged user, a locked-down container)
`SlotCgroup.create` returns None and the sandbox falls back to rlimits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CGROUP_ROOT", "CgroupUsage", "SlotCgroup"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_V1_CONTROLLERS = ("memory", "pids", "cpuacct")


@dataclass(frozen=True)
class CgroupUsage:
    """What an execution's cgroup recorded."""

    memory_limit_hit: bool
    pids_limit_hit: bool
    cpu_time_s: float | None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class SlotCgroup:
    """The cgroup directories of one sandbox slot (create with `SlotCgroup.create`)."""

    def __init__(self, dirs: dict[str, Path], version: int):
        self.dirs = dirs
        self.version = version
        self._pids_events_before = 0
        self._memory_events_before = 0
        self._cpu_before: float | None = None

    @classmethod
    def create(cls, name: str, root: Path = CGROUP_ROOT) -> SlotCgroup | None:
        """Create `palaestra/<name>` under each controller; None if that is not possible here."""
        if (root / "cgroup.controllers").exists():  # v2 unified hierarchy
            base = root / "palaestra"
            try:
                base.mkdir(exist_ok=True)
                wanted = {"memory", "pids", "cpu"} & set(_read(root / "cgroup.controllers").split())
                for ctrl in wanted:
                    with contextlib.suppress(OSError):
                        _write(base / "cgroup.subtree_control", f"+{ctrl}")
                path = base / name
                path.mkdir(exist_ok=True)
                if not (path / "memory.max").exists() or not (path / "pids.max").exists():
                    return None
            except OSError:
                return None
            return cls({"unified": path}, version=2)
        dirs: dict[str, Path] = {}
        try:
            for ctrl in _V1_CONTROLLERS:
                if not (root / ctrl).is_dir():
                    return None
                path = root / ctrl / "palaestra" / name
                path.mkdir(parents=True, exist_ok=True)
                dirs[ctrl] = path
        except OSError:
            for path in dirs.values():
                with contextlib.suppress(OSError):
                    path.rmdir()
            return None
        return cls(dirs, version=1)

    @property
    def procs_files(self) -> list[Path]:
        """The `cgroup.procs` files a launcher writes its pid into (one per hierarchy)."""
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def prepare(self, *, memory_bytes: int, max_pids: int) -> None:
        """Set the limits and reset the counters for the next execution."""
        self.kill_all()
        if self.version == 2:
            d = self.dirs["unified"]
            _write(d / "memory.max", str(memory_bytes))
            with contextlib.suppress(OSError):
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(max_pids))
            self.reset_counters()
            return
        mem, pids = self.dirs["memory"], self.dirs["pids"]
        # memsw must stay >= the memory limit: lower it first when shrinking, raise it last when growing
        memsw = mem / "memory.memsw.limit_in_bytes"
        with contextlib.suppress(OSError):
            _write(memsw, "-1")
        _write(mem / "memory.limit_in_bytes", str(memory_bytes))
        with contextlib.suppress(OSError):
            _write(memsw, str(memory_bytes))  # no swap either
        _write(pids / "pids.max", str(max_pids))
        self.reset_counters()

    def reset_counters(self) -> None:
        """Start `usage`'s counts afresh (`prepare` does; a session does before each execution)."""
        self._pids_events_before = self._pids_max_events()
        if self.version == 2:
            self._memory_events_before = self._memory_oom_events()
            self._cpu_before = self._cpu_usage_s()
            return
        mem = self.dirs["memory"]
        for counter in ("memory.failcnt", "memory.max_usage_in_bytes"):
            with contextlib.suppress(OSError):
                _write(mem / counter, "0")
        self._memory_events_before = self._oom_kills_v1()
        with contextlib.suppress(OSError):
            _write(self.dirs["cpuacct"] / "cpuacct.usage", "0")

    def _pids_max_events(self) -> int:
        d = self.dirs.get("pids") or self.dirs["unified"]
        for line in _read(d / "pids.events").splitlines():
            key, _, value = line.partition(" ")
            if key == "max":
                return int(value)
        return 0

    def _memory_oom_events(self) -> int:
        for line in _read(self.dirs["unified"] / "memory.events").splitlines():
            key, _, value = line.partition(" ")
            if key in ("oom", "max"):
                return int(value)
        return 0

    def _cpu_usage_s(self) -> float | None:
        if self.version == 2:
            for line in _read(self.dirs["unified"] / "cpu.stat").splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
            return None
        raw = _read(self.dirs["cpuacct"] / "cpuacct.usage").strip()
        return int(raw) / 1e9 if raw else None

    def usage(self) -> CgroupUsage:
        """Counters of the execution since `prepare` (or `reset_counters`)."""
        pids_hit = self._pids_max_events() > self._pids_events_before
        if self.version == 2:
            mem_hit = self._memory_oom_events() > self._memory_events_before
            cpu = self._cpu_usage_s()
            cpu = None if cpu is None or self._cpu_before is None else cpu - self._cpu_before
            return CgroupUsage(mem_hit, pids_hit, cpu)
        mem = self.dirs["memory"]
        failcnt = int(_read(mem / "memory.failcnt").strip() or 0)
        peak = int(_read(mem / "memory.max_usage_in_bytes").strip() or 0)
        limit = int(_read(mem / "memory.limit_in_bytes").strip() or 1 << 62)
        mem_hit = self._oom_kills_v1() > self._memory_events_before or failcnt > 0 or peak >= limit
        return CgroupUsage(mem_hit, pids_hit, self._cpu_usage_s())

    def _oom_kills_v1(self) -> int:
        for line in _read(self.dirs["memory"] / "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def pids(self) -> list[int]:
        """Processes currently in the slot's cgroup."""
        found: set[int] = set()
        for procs in self.procs_files:
            found.update(int(p) for p in _read(procs).split())
        return sorted(found)

    def kill_all(self, timeout_s: float = 2.0) -> bool:
        """SIGKILL every process in the cgroup until it is empty; returns whether it emptied."""
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.pids()
            if not pids:
                return True
            if time.monotonic() > deadline:
                return False
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def remove(self) -> None:
        """Kill what is left and delete the directories."""
        self.kill_all()
        for path in self.dirs.values():
            with contextlib.suppress(OSError):
                path.rmdir()
