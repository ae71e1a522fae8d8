"""The local backend's command lines: the launcher script, the uid drop, and the bwrap or unshare arguments.

An execution's argv reads, outermost first:

    /bin/sh -c LAUNCHER sh            sets rlimits, joins the slot's cgroups, execs the rest
      setpriv --reuid=U ...           only when the caller is root: drops to the slot's own uid
        bwrap ... --                  namespaces, mounts, a cleared environment (or: unshare ... sh -c)
          COMMAND                     the program, in /work

Why each part is there: `palaestra.sandbox.local`'s module docstring.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from palaestra.sandbox.api import WORK_DIR, Limits
from palaestra.sandbox.cgroups import SlotCgroup
from palaestra.sandbox.exit_status import cpu_rlimit

__all__ = [
    "BWRAP_OVERHEAD_PROCS",
    "LOADER_PATH",
    "SYSTEM_PATH",
    "LocalCommandLine",
    "bind_system_dirs",
    "count_processes",
    "interpreter_prefix",
    "launcher_script",
]

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
"""PATH of the launcher and of the program."""
BWRAP_OVERHEAD_PROCS = 2
"""Processes the sandbox adds to the program's budget: the outer bwrap and the program (the namespace's init)."""
LOADER_PATH = "/palaestra-loader.py"
"""Where a warm sandbox's loader lies inside it (read-only)."""
_WORLD_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/run/lock", "/dev/shm", "/dev/mqueue")


def bind_system_dirs() -> list[str]:
    """bwrap args for /usr, the merged-usr links (or binds) /bin, /sbin, /lib, /lib64, and
    /etc/alternatives (the links that make `awk` and friends resolve)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{top}"]
    # Debian's alternatives (awk -> mawk, ...): symlinks into /usr, nothing else of /etc
    if Path("/etc/alternatives").is_dir():
        args += ["--ro-bind", "/etc/alternatives", "/etc/alternatives"]
    return args


def interpreter_prefix(python: str) -> str | None:
    """The prefix to bind read-only for an interpreter outside /usr (`<prefix>/bin/python3`), else None."""
    real = os.path.realpath(python)
    if real.startswith("/usr/"):
        return None
    return str(Path(real).parent.parent)  # <prefix>/bin/python3 -> <prefix>


def count_processes(uid: int) -> int:
    """Processes running as `uid` now (a non-root caller's RLIMIT_NPROC counts them all)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += 1
    return count


@dataclass
class LocalCommandLine:
    """Builds the argv that starts one execution on this machine.

    Attributes:
        isolation: "bubblewrap" or the weak "unshare" fallback.
        is_root: whether the caller is root (then the launcher drops to the slot uid with `setpriv`).
        system_binds: bwrap args that mount the system directories (`bind_system_dirs()`).
        python_prefix: an interpreter prefix outside /usr to bind read-only, or None.
    """

    isolation: Literal["bubblewrap", "unshare"]
    is_root: bool
    system_binds: list[str]
    python_prefix: str | None = None

    def argv(
        self,
        *,
        uid: int,
        cgroup: SlotCgroup | None,
        limits: Limits,
        command: Sequence[str],
        files: dict[str, bytes],
        fds: list[int],
        workdir: str | None,
        info_fd: int,
    ) -> list[str]:
        """The whole argv of one execution.

        Args:
            uid: the slot uid the program runs as (when the caller is root).
            cgroup: the slot's cgroup the launcher joins, or None (memory is then capped by RLIMIT_AS).
            limits: the execution's limits.
            command: the program's argv.
            files: the input files; with bubblewrap, `fds` holds one memfd per file, in order, then
                the loader's memfd (for a standby sandbox) and bwrap's status pipe.
            fds: the inherited descriptors (bubblewrap only).
            workdir: the unshare fallback's host work dir (unshare only).
            info_fd: the write end of bwrap's JSON status pipe.
        """
        drop = (
            [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "--no-new-privs",
                "--",
            ]
            if self.is_root
            else []
        )
        if self.isolation == "bubblewrap":
            loader_fd = fds[len(files)] if len(fds) == len(files) + 2 else None
            inner = [*drop, *self.bwrap_args(limits, files, fds[: len(files)], info_fd, loader_fd), *command]
        else:
            assert workdir is not None
            env = ["env", "-i", f"PATH={SYSTEM_PATH}", f"HOME={workdir}", "TMPDIR=/tmp", "LANG=C.UTF-8"]
            inner = [*self.unshare_args(limits, workdir), *drop, *env, *command]
        nproc = limits.max_processes + BWRAP_OVERHEAD_PROCS
        if not self.is_root:
            nproc += count_processes(os.getuid())
        return ["/bin/sh", "-c", launcher_script(cgroup, limits, nproc=nproc), "sh", *inner]

    def bwrap_args(
        self, limits: Limits, files: dict[str, bytes], fds: list[int], info_fd: int, loader_fd: int | None
    ) -> list[str]:
        """bwrap's arguments up to `--`: namespaces, mounts, `files` from `fds`, a cleared environment."""
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
            *self.system_binds,
        ]
        if self.python_prefix is not None:
            args += ["--ro-bind", self.python_prefix, self.python_prefix]
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
            SYSTEM_PATH,
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

    def unshare_args(self, limits: Limits, workdir: str) -> list[str]:
        """The fallback's `unshare ... sh -c` prefix: new namespaces, private tmpfs dirs, cd `workdir`."""
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


def launcher_script(cgroup: SlotCgroup | None, limits: Limits, *, nproc: int) -> str:
    """The outermost shell's script: rlimits, then join `cgroup` (or cap memory by RLIMIT_AS), then exec."""
    lines = [
        "set -e",  # a limit that cannot be set stops the launch
        "ulimit -c 0",
        # RLIMIT_CPU: SIGXCPU at the soft limit (unambiguous, see `exit_status.limit_from_status`); the
        # hard limit one second later SIGKILLs a program that handles SIGXCPU
        f"ulimit -S -t {cpu_rlimit(limits)}",
        f"ulimit -H -t {cpu_rlimit(limits) + 1}",
        f"ulimit -f {limits.max_file_size_mb * 2048}",  # 512-byte blocks
        f"ulimit -n {limits.max_open_files}",
        f"ulimit -p {nproc}",
    ]
    if cgroup is None:
        # RLIMIT_AS counts address space, not memory: leave room for the interpreter's mappings
        lines.append(f"ulimit -v {(limits.memory_mb + 64) * 1024}")
    else:
        lines += [f"echo $$ > {shlex.quote(str(p))} || exit 125" for p in cgroup.procs_files]
    lines.append('exec "$@"')
    return "\n".join(lines)
