"""The local backend's slot pool: one uid and cgroup per concurrent execution, and warm standby sandboxes.

Each slot serves one execution at a time. When the caller is root, every slot runs its programs as a
uid of its own (a block of uids per process, chosen by pid) in a cgroup of its own, so concurrent
executions never share a process budget or can signal each other. With warm slots, a released slot
starts its next single-use sandbox (a "standby") in the background before it is handed out again;
the next execution with the same limits takes it instead of starting cold.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from palaestra.sandbox.api import Limits
from palaestra.sandbox.cgroups import SlotCgroup
from palaestra.sandbox.local_process import Launch

__all__ = ["Slot", "SlotPool", "allocate_uids"]

logger = logging.getLogger(__name__)

_uid_lock = threading.Lock()
_uids_handed_out = 0
_UIDS_PER_PROCESS = 1024
T = TypeVar("T")


@dataclass
class Slot:
    """One concurrency slot: the uid its programs run as, its cgroup, and its standby sandbox if any."""

    index: int
    uid: int
    cgroup: SlotCgroup | None
    standby: Launch | None = None


def allocate_uids(base: int, count: int) -> list[int]:
    """Slot uids no other sandbox of this process (nor, by pid, of another process) shares."""
    global _uids_handed_out
    with _uid_lock:
        start = _uids_handed_out
        _uids_handed_out += count
    block = base + (os.getpid() % 4096) * _UIDS_PER_PROCESS
    return [block + (start + i) % _UIDS_PER_PROCESS for i in range(count)]


class SlotPool:
    """The slots of one `LocalSandbox`, handed out one execution at a time (most recently used first).

    Args:
        count: number of slots (the sandbox's `max_concurrency`).
        run_id: names the slots' cgroups (`<run_id>-<index>`).
        uid_base: base of the slot uids (see `allocate_uids`).
        own_uids: give every slot its own uid and cgroup (the caller is root); otherwise every slot
            runs as the caller, without a cgroup.
        start_standby: starts a standby sandbox for a slot and limits (used by `release` and
            `take_standby`).
    """

    def __init__(
        self,
        count: int,
        *,
        run_id: str,
        uid_base: int,
        own_uids: bool,
        start_standby: Callable[[Slot, Limits], Launch],
    ):
        self.slots: list[Slot] = []
        """Every slot, in index order."""
        self._free: queue.LifoQueue[Slot] = queue.LifoQueue()
        uids = allocate_uids(uid_base, count)
        for index in range(count):
            uid = uids[index] if own_uids else os.getuid()
            cgroup = SlotCgroup.create(f"{run_id}-{index}") if own_uids else None
            slot = Slot(index, uid, cgroup)
            self.slots.append(slot)
            self._free.put(slot)
        self._start_standby = start_standby
        self._refiller = concurrent.futures.ThreadPoolExecutor(
            max_workers=count, thread_name_prefix="palaestra-sandbox-standby"
        )
        self.closed = False

    def acquire(self, timeout: float | None = None) -> Slot:
        """A free slot; waits for one if all are busy (raises `queue.Empty` after `timeout` seconds)."""
        return self._free.get(timeout=timeout)

    def in_worker(self, fn: Callable[[], T]) -> T:
        """`fn()` run in one of the pool's long-lived threads: a process started there with
        `bwrap --die-with-parent` dies with that thread, not with a short-lived caller's."""
        return self._refiller.submit(fn).result()

    def release(self, slot: Slot, refill_limits: Limits | None) -> None:
        """Sweep the slot and give it back; with `refill_limits`, start its next standby first (in
        the background, so the caller does not wait)."""
        if refill_limits is None or self.closed:
            self.sweep(slot)
            self._free.put(slot)
            return

        def refill() -> None:
            try:
                self.sweep(slot)
                if not self.closed:
                    slot.standby = self._start_standby(slot, refill_limits)
            except Exception:  # the next run starts cold and reports any real failure
                logger.exception("sandbox slot %d: could not start a standby sandbox", slot.index)
            finally:
                self._free.put(slot)

        try:
            self._refiller.submit(refill)
        except RuntimeError:  # shut down: closing
            self.sweep(slot)
            self._free.put(slot)

    def take_standby(self, slot: Slot, limits: Limits) -> Launch:
        """The slot's standby if it was started with `limits` and still waits, else a new one."""
        standby, slot.standby = slot.standby, None
        if standby is None or standby.limits != limits or standby.proc.poll() is not None:
            if standby is not None:
                standby.discard(slot.cgroup)
                self.sweep(slot)
            standby = self._start_standby(slot, limits)
        return standby

    def sweep(self, slot: Slot) -> None:
        """Kill whatever is left in the slot's cgroup."""
        if slot.cgroup is not None and not slot.cgroup.kill_all():
            logger.error("sandbox slot %d: processes survive SIGKILL: %s", slot.index, slot.cgroup.pids())

    def leftover_processes(self) -> list[int]:
        """Live processes running as a slot uid that are not part of an idle standby sandbox."""
        uids = {slot.uid for slot in self.slots}
        standby_roots = {slot.standby.proc.pid for slot in self.slots if slot.standby is not None}
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

    def close(self) -> None:
        """Wait for refills, kill the standbys and remove the cgroups (call once)."""
        self.closed = True
        self._refiller.shutdown(wait=True)
        for slot in self.slots:
            if slot.standby is not None:
                slot.standby.discard(slot.cgroup)
                slot.standby = None
            if slot.cgroup is not None:
                slot.cgroup.remove()
