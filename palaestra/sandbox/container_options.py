"""How the container backend creates a slot's container: the engine's create options and resource limits.

A slot container (see `palaestra.sandbox.docker`) has no network, a read-only root, tmpfs /work,
/tmp and /dev/shm sized by `Limits.disk_mb`, a private IPC namespace, only the KILL, SETUID and SETGID
capabilities, `no-new-privileges`, pids and memory(+swap) limits and no log driver. Its PID 1 reads
the agent's source (`_container_agent.py`) from the attach stream and runs it.
"""

from __future__ import annotations

from pathlib import Path

from palaestra.sandbox.api import WORK_DIR, Limits

__all__ = [
    "AGENT_MEMORY_MB",
    "AGENT_PIDS",
    "AGENT_SOURCE",
    "agent_command",
    "container_key",
    "container_options",
    "resource_update",
]

AGENT_MEMORY_MB = 24
"""Added to the container's memory limit for the agent (a Python without site: ~8 MB resident)."""
AGENT_PIDS = 2
"""Added to the pids limit: the agent, and the launcher's instant before it execs."""
_PODMAN_ULIMIT = 4096
"""nofile and nproc of podman containers; the launcher clamps the per-execution limits to them."""
AGENT_SOURCE = (Path(__file__).parent / "_container_agent.py").read_text(encoding="utf-8").encode()
"""The agent: PID 1 of every sandbox container, sent over the attach stream at start."""
_BOOTSTRAP = "import sys; exec(sys.stdin.buffer.read(%d))"
"""PID 1's command line: reads the agent's source from the attach stream (one line in `ps`)."""


def agent_command(python: str, uid: int) -> list[str]:
    """The argv that starts the agent (its source then comes on stdin) for programs running as `uid`."""
    return [python, "-I", "-S", "-c", _BOOTSTRAP % len(AGENT_SOURCE), str(uid)]


def container_options(
    limits: Limits, uid: int, *, python: str, labels: dict[str, str], cpus: float | None, is_podman: bool
) -> dict:
    """`containers.create` arguments of a slot container whose programs run as `uid`."""
    from docker.types import LogConfig, Ulimit

    disk = f"{limits.disk_mb}m"
    memory = f"{limits.memory_mb + AGENT_MEMORY_MB}m"
    # podman 4's tmpfs takes neither uid=/gid= nor mode=: the agent makes its /work sticky and
    # world-writable instead (only the slot uid runs programs in the container)
    work_owner = "mode=1777" if is_podman else f"mode=0700,uid={uid},gid={uid}"
    ulimits = [Ulimit(name="core", soft=0, hard=0)]
    if is_podman:  # podman's defaults (nofile 1048576) exceed most hosts' hard limits
        ulimits += [Ulimit(name=n, soft=_PODMAN_ULIMIT, hard=_PODMAN_ULIMIT) for n in ("nofile", "nproc")]
    entrypoint, *command = agent_command(python, uid)
    return {
        "entrypoint": [entrypoint],
        "command": command,
        "labels": labels,
        "user": "0:0",
        "working_dir": WORK_DIR,
        "hostname": "sandbox",
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {
            WORK_DIR: f"size={disk},{work_owner},exec,nosuid,nodev",
            "/tmp": f"size={disk},mode=1777,exec,nosuid,nodev",
        },
        "shm_size": disk,
        "ipc_mode": "private",
        "cap_drop": ["ALL"],
        "cap_add": ["KILL", "SETUID", "SETGID"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": limits.max_processes + AGENT_PIDS,
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": int(cpus * 1e9) if cpus else None,
        "ulimits": ulimits,
        "log_config": LogConfig(type="none"),
        "stdin_open": True,
        "detach": False,  # with stdin_open: StdinOnce, stdin closes when our attach ends
        "tty": False,
        "auto_remove": True,
    }


def resource_update(limits: Limits) -> dict[str, int]:
    """The engine's container-update body that gives a running container `limits`' memory and pids limits."""
    memory = (limits.memory_mb + AGENT_MEMORY_MB) * 1024 * 1024
    return {"Memory": memory, "MemorySwap": memory, "PidsLimit": limits.max_processes + AGENT_PIDS}


def container_key(limits: Limits) -> tuple[int, int, int]:
    """The limits fixed at container creation: (memory_mb, max_processes, disk_mb)."""
    return (limits.memory_mb, limits.max_processes, limits.disk_mb)
