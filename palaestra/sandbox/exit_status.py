"""What an execution's end means, for every backend: its exit code or signal, and which limit stopped it.

Both backends start the program through a launcher that reports a signal death as exit status 128+N
(bubblewrap, the unshare shell, the container agent's wait status), and both judge the limit from the
same evidence: the signal, the CPU time used, the cgroup's counters and what the program wrote to
stderr.
"""

from __future__ import annotations

import math
import signal

from palaestra.sandbox.api import LimitKind, Limits
from palaestra.sandbox.cgroups import CgroupUsage

__all__ = ["cpu_rlimit", "decode_status", "limit_from_status"]


def cpu_rlimit(limits: Limits) -> int:
    """Whole seconds of RLIMIT_CPU's soft limit for `limits.cpu_time_s` (the kernel counts seconds)."""
    return max(1, math.ceil(limits.cpu_time_s))


def decode_status(returncode: int) -> tuple[int | None, int | None]:
    """(exit_code, signal): bubblewrap reports a program killed by signal N as exit status 128+N."""
    if returncode < 0:
        return None, -returncode
    if 128 < returncode <= 128 + 64:
        return None, returncode - 128
    return returncode, None


def limit_from_status(
    exit_code: int | None,
    sig: int | None,
    stderr: str,
    cpu_s: float,
    limits: Limits,
    usage: CgroupUsage | None,
) -> LimitKind | None:
    """The limit that stopped a program which ended on its own or by a kernel signal, or None."""
    failed = exit_code != 0
    # Only RLIMIT_CPU's soft limit sends SIGXCPU. The kernel checks that limit against CPU time
    # sampled at timer ticks, which on a loaded machine runs well ahead of the exact time `cpu_s`
    # measures (a program killed at 1 s sampled had used 0.85 s), so `cpu_s` cannot tell this case.
    if sig == signal.SIGXCPU:
        return "cpu_time"
    # the hard limit, one second later (a program that handled SIGXCPU, or a non-Python command as
    # PID 1 of its namespace, which ignores it): killed with at least half the hard limit used, even
    # if the sampled time ran twice as fast as the exact one
    if sig == signal.SIGKILL and cpu_s >= 0.5 * (cpu_rlimit(limits) + 1):
        return "cpu_time"
    if usage is not None and usage.memory_limit_hit and (sig == signal.SIGKILL or "MemoryError" in stderr):
        return "memory"
    if failed and "MemoryError" in stderr:
        return "memory"
    if usage is not None and usage.pids_limit_hit:
        return "processes"
    forks_refused = (
        "BlockingIOError: [Errno 11]",
        "Resource temporarily unavailable",
        "Cannot fork",
    )  # dash's
    if failed and any(sign in stderr for sign in forks_refused):
        return "processes"
    if sig == signal.SIGXFSZ or (failed and "File too large" in stderr):
        return "file_size"
    if failed and "No space left on device" in stderr:
        return "disk"
    return None
