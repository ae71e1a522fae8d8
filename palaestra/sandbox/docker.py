"""The `docker` / `podman` sandbox backend: one warm container per slot, a trusted agent inside.

Each concurrency slot owns one long-lived container of the sandbox image
(`containers/sandbox.Dockerfile`), created with no network, a read-only root, tmpfs /work, /tmp and
/dev/shm sized by `Limits.disk_mb`, a private IPC namespace, all capabilities dropped but KILL,
SETUID and SETGID, `no-new-privileges`, the engine's default seccomp profile, pids/memory(+swap)/cpu
limits and no log driver (`container_options`). Its PID 1 is a small agent (`_container_agent.py`,
stdlib only, run by the image's Python) that the host drives over the container's attach stream
(`container_protocol`):

    host  --E(argv, files, stdin, rlimits)-->  agent (root, caps KILL/SETUID/SETGID only)
                                                 fork -> setsid, drop to the slot uid, write files
                                                   -> /bin/sh sets rlimits -> exec the program
    host  <--1/2 (stdout/stderr chunks)------  agent relays the program's pipes
    host  --K (kill: wall time, output)----->  agent kills every process but itself
    host  <--X (status, cpu, counters)-------  agent kills leftovers, wipes, reports

Why a warm container with an agent, not `docker exec` or a fresh container per execution (measured
on a 2-core VM, Docker 20.10, `print(1+1)`): a fresh container costs ~440 ms, an SDK `exec_run` in a
warm container ~100 ms, one round trip to the agent ~25 ms (the Python start-up, mostly). Reusing a
container is safe only if nothing of one execution survives into the next, so after every execution
the agent, before it reports:
    - SIGKILLs every process in the container's pid namespace but itself (`kill(-1)` from PID 1,
      repeated and reaped until none is left), so orphans, daemons and fork bombs end with the
      execution, like a pid namespace ending with its init;
    - wipes /work, /tmp, /var/tmp, /dev/shm and /dev/mqueue and removes SysV IPC objects (as the
      slot uid, in a forked child), and checks they are empty. Anything it cannot clean, or an agent that does
      not answer a kill within `_KILL_GRACE_S`, makes the host discard the container; the next
      execution on that slot gets a new one.
The agent runs as root so the program (a different uid, no capabilities) can neither signal,
ptrace nor read it (/proc/1 is closed to it), and the agent's stdout is the only channel to the
host: the program cannot forge the exit report. Programs run as a uid drawn per container (from
`_UID_BASE`), so RLIMIT_NPROC counts only that container's processes. The container is created
with `stdin_once` and auto-removal: if the host process dies, the agent sees its stdin close, exits,
and the engine removes the container.

Per container: `memory_mb` (cgroup memory = memory+swap, plus `AGENT_MEMORY_MB` for the agent)
and `max_processes` (pids cgroup, plus room for the agent), changed in place through the engine's
update API (~10 ms) when a run's limits differ; `disk_mb` (tmpfs sizes) is fixed at creation, so a
run with another `disk_mb` recreates the slot's container (~0.4 s).
Per execution (rlimits the launcher sets, which the program cannot raise): `cpu_time_s`
(RLIMIT_CPU), `max_file_size_mb` (RLIMIT_FSIZE), `max_open_files` (RLIMIT_NOFILE), `max_processes`
(RLIMIT_NPROC); `wall_time_s` and `max_output_bytes` are enforced by the host, which sends the kill.

podman: the same code against podman's Docker-compatible API (`podman system service`; as root
here it needs `--runtime runc`), detected from the engine's version. Tested with podman 4.3: the
shared suites pass except one attack test, because podman's default seccomp profile lets programs
create user namespaces (`unshare(CLONE_NEWUSER)` succeeds; Docker's profile refuses it). Its
automatic /var/tmp tmpfs is not sized by `disk_mb` (only the memory limit bounds it), and memory and
pids changes recreate the container (its compat API has no in-place update).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from palaestra.sandbox.api import (
    SESSION_SLOT_WAIT_S,
    ExecutionResult,
    LimitKind,
    Limits,
    Sandbox,
    SandboxError,
    SandboxSession,
    SandboxUnavailableError,
)
from palaestra.sandbox.cgroups import CgroupUsage
from palaestra.sandbox.container_options import (
    AGENT_SOURCE,
    container_key,
    container_options,
    resource_update,
)
from palaestra.sandbox.container_protocol import (
    AgentFrames,
    ContainerDied,
    Exchange,
    exchange,
    read_frames,
    run_request,
)

__all__ = ["DEFAULT_IMAGE", "ContainerSandbox", "Engine"]

logger = logging.getLogger(__name__)

Engine = Literal["docker", "podman"]
DEFAULT_IMAGE = "palaestra-sandbox:latest"
_BUILD_HINT = "docker build -f containers/sandbox.Dockerfile -t {image} containers/  (or bash scripts/sandbox-engine.sh)"
_UID_BASE = 2_000_000
"""Programs run as `_UID_BASE + random(2**20)`: no passwd entry, far from real and subordinate uids."""
_KILL_GRACE_S = 5.0
"""How long the agent may take to kill and clean after a kill request before the container is discarded."""
_START_TIMEOUT_S = 30.0


@dataclass
class _Slot:
    index: int
    container: Any = None  # docker.models.containers.Container (the SDK is untyped)
    sock: socket.socket | None = None
    key: tuple[int, int, int] | None = None
    frames: AgentFrames = field(default_factory=AgentFrames)
    created: int = 0


def _connect(docker, engine: Engine, engine_url: str | None, image: str):
    """A client of the engine at `engine_url` (or the default) that has `image`, and its URL."""
    url = engine_url
    if url is None and engine == "podman":
        url = (
            f"unix:///run/user/{os.getuid()}/podman/podman.sock"
            if os.geteuid()
            else "unix:///run/podman/podman.sock"
        )
    try:
        if url is None:  # the SDK's default: DOCKER_HOST, else the standard socket
            client = docker.from_env(version="auto", timeout=60)
        else:
            client = docker.DockerClient(base_url=url, version="auto", timeout=60)
        client.ping()
    except docker.errors.DockerException as exc:
        raise SandboxUnavailableError(
            f"no {engine} engine answers at {url or 'DOCKER_HOST or unix:///var/run/docker.sock'}: {exc}. "
            "Start one (bash scripts/sandbox-engine.sh starts a private dockerd) or pass engine_url"
        ) from exc
    url = url or client.api.base_url
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound as exc:
        raise SandboxUnavailableError(
            f"image {image!r} is not in the {engine} engine at {url}; build it: "
            + _BUILD_HINT.format(image=image)
        ) from exc
    except docker.errors.APIError as exc:
        raise SandboxUnavailableError(f"the engine at {url} failed to look up {image!r}: {exc}") from exc
    return client, url


class ContainerSandbox(Sandbox):
    """Runs programs in warm containers of the sandbox image (see the module docstring).

    Args:
        limits: default limits of every execution (each call may pass its own).
        max_concurrency: executions at once; one container per slot, created on first use.
        engine: "docker" or "podman" (podman's Docker-compatible API service).
        image: the sandbox image (build it from containers/sandbox.Dockerfile).
        engine_url: the engine's API socket (default: DOCKER_HOST or the standard docker socket;
            /run/podman/podman.sock for podman as root).
        python: interpreter inside the image (default /usr/bin/python3); it also runs the agent.
        cpus: CPU share of each container (`nano_cpus`), None for no cap.

    Raises:
        SandboxUnavailableError: the docker SDK is missing, the engine does not answer at the URL, or
            the image is not there (the message says how to build it).
    """

    name = "docker"

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        max_concurrency: int = 4,
        engine: Engine = "docker",
        image: str = DEFAULT_IMAGE,
        engine_url: str | None = None,
        python: str | None = None,
        cpus: float | None = 1.0,
    ):
        super().__init__(limits=limits, max_concurrency=max_concurrency)
        if engine not in ("docker", "podman"):
            raise ValueError(f"engine={engine!r}; expected 'docker' or 'podman'")
        try:
            import docker
            import docker.errors
        except ImportError as exc:
            raise SandboxUnavailableError(
                "the docker backend needs the Docker SDK for Python: pip install 'palaestra[sandbox-docker]'"
            ) from exc
        self._errors = docker.errors
        self.name = engine
        self.engine = engine
        self.image = image
        self.python = python or "/usr/bin/python3"
        self.cpus = cpus
        self._client, self.engine_url = _connect(docker, engine, engine_url, image)
        components = self._client.version().get("Components") or []
        self.is_podman = any("podman" in str(c.get("Name", "")).lower() for c in components)
        """Whether the engine is podman (whatever `engine` said): its quirks are worked around."""
        self._run_id = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self._slots: queue.LifoQueue[_Slot] = queue.LifoQueue()
        self._all_slots = [_Slot(i) for i in range(max_concurrency)]
        for slot in self._all_slots:
            self._slots.put(slot)
        self._lock = threading.Lock()  # container creation and removal
        self._closed = False

    # -- containers --------------------------------------------------------------------------------
    @property
    def labels(self) -> dict[str, str]:
        """Labels on this sandbox's containers (to find them with the engine's API)."""
        return {"palaestra.sandbox": "1", "palaestra.sandbox.run": self._run_id}

    def _create(self, slot: _Slot, limits: Limits) -> None:
        uid = _UID_BASE + int.from_bytes(os.urandom(3), "big") % (1 << 20)
        slot.created += 1
        name = f"palaestra-sandbox-{self._run_id}-{slot.index}-{slot.created}"
        try:
            container = self._client.containers.create(
                self.image,
                name=name,
                **container_options(
                    limits,
                    uid,
                    python=self.python,
                    labels=self.labels,
                    cpus=self.cpus,
                    is_podman=self.is_podman,
                ),
            )
        except self._errors.ImageNotFound as exc:
            raise SandboxUnavailableError(
                f"image {self.image!r} is gone from the engine at {self.engine_url}; rebuild it: "
                + _BUILD_HINT.format(image=self.image)
            ) from exc
        except self._errors.APIError as exc:
            raise SandboxError(f"could not create a sandbox container: {exc}") from exc
        try:
            raw = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            inner = getattr(raw, "_sock", raw)
            # a descriptor of our own: the SDK's response object closes its socket when the garbage
            # collector gets to it, at no fixed moment (an execution then failed with EBADF)
            sock = socket.socket(fileno=os.dup(inner.fileno()))
            for owned in (raw, inner):
                with contextlib.suppress(OSError):
                    owned.close()
            sock.settimeout(None)
            container.start()
            slot.container, slot.sock, slot.frames = container, sock, AgentFrames()
            slot.key = container_key(limits)
            self._handshake(slot)
        except Exception as exc:
            self._discard(slot)
            if isinstance(exc, self._errors.APIError) and "no such file" in str(exc).lower():
                raise SandboxUnavailableError(
                    f"python={self.python!r} is not in image {self.image!r}; pass the interpreter's path"
                ) from exc
            if isinstance(exc, SandboxError):
                raise
            raise SandboxError(f"could not start a sandbox container: {exc}") from exc

    def _fit(self, slot: _Slot, limits: Limits) -> None:
        """Give the slot a container with `limits`' per-container limits: as it is, updated, or new."""
        key = container_key(limits)
        if slot.container is not None and slot.key == key:
            return
        if (
            slot.container is not None
            and slot.key is not None
            and slot.key[2] == key[2]
            and self._update(slot, limits)
        ):
            slot.key = key
            return
        self._discard(slot)
        self._create(slot, limits)

    def _update(self, slot: _Slot, limits: Limits) -> bool:
        """Change the memory and pids limits of the slot's container in place (~10 ms, vs ~0.4 s anew)."""
        api = self._client.api
        url = f"{api.base_url}/v{api.api_version}/containers/{slot.container.id}/update"
        data = resource_update(limits)
        try:
            response = api.post(url, json=data, timeout=30)
        except Exception as exc:  # the engine's transport errors (requests), not the program's
            logger.info("sandbox slot %d: in-place update failed (%s); recreating", slot.index, exc)
            return False
        if response.status_code >= 400:
            logger.info(
                "sandbox slot %d: in-place update refused (%s); recreating", slot.index, response.text
            )
            return False
        return True

    def _handshake(self, slot: _Slot) -> None:
        assert slot.sock is not None
        slot.sock.sendall(AGENT_SOURCE)
        deadline = time.monotonic() + _START_TIMEOUT_S
        for kind, _ in read_frames(slot.sock, slot.frames, deadline):
            if kind == b"R":
                return
        raise SandboxError(f"the sandbox agent did not answer within {_START_TIMEOUT_S:.0f} s")

    def _discard(self, slot: _Slot) -> None:
        """Remove the slot's container (the next execution on the slot creates a new one)."""
        container, sock = slot.container, slot.sock
        slot.container, slot.sock, slot.key = None, None, None
        with self._lock:
            if container is not None:
                with contextlib.suppress(self._errors.NotFound, self._errors.APIError):
                    container.remove(force=True)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    # -- execution ---------------------------------------------------------------------------------
    def _run(
        self, command: list[str], files: dict[str, bytes], stdin: bytes, limits: Limits
    ) -> ExecutionResult:
        slot = self._slots.get()
        try:
            if self._closed:
                raise SandboxError("this sandbox is closed")
            self._fit(slot, limits)
            return self._run_in_slot(slot, command, files, stdin, limits)
        finally:
            self._slots.put(slot)

    def _run_in_slot(
        self,
        slot: _Slot,
        command: list[str],
        files: dict[str, bytes],
        stdin: bytes,
        limits: Limits,
        *,
        keep: bool = False,
    ) -> ExecutionResult:
        assert slot.sock is not None
        request = run_request(command, files, stdin, limits, keep=keep)
        ex = exchange(slot.sock, slot.frames, request, limits, kill_grace_s=_KILL_GRACE_S)
        if ex.lost is not None or ex.report is None:
            return self._lost_container(slot, ex)
        report = ex.report
        if not report.clean:
            logger.warning("sandbox slot %d: the container could not be cleaned; replacing it", slot.index)
            self._discard(slot)
        if report.setup_error:
            raise SandboxError(f"the sandbox failed to start the program: {report.setup_error}")
        return ex.result(limits, CgroupUsage(report.oom_kills > 0, report.pids_max_events > 0, report.cpu_s))

    def _lost_container(self, slot: _Slot, ex: Exchange) -> ExecutionResult:
        """The agent died or hung: report the execution as killed, or raise if no limit explains it."""
        oom_killed = False
        if isinstance(ex.lost, ContainerDied) and slot.container is not None:
            with contextlib.suppress(self._errors.APIError):
                slot.container.reload()
                oom_killed = bool(slot.container.attrs["State"].get("OOMKilled"))
        self._discard(slot)
        limit: LimitKind | None = ex.stopped_by or ("memory" if oom_killed else None)
        if limit is None:
            raise SandboxError(
                f"the sandbox container died during the execution ({type(ex.lost).__name__}: {ex.lost})"
            )
        return ex.killed(limit)

    # -- sessions ----------------------------------------------------------------------------------
    def _session(self, files: dict[str, bytes], limits: Limits) -> SandboxSession:
        try:
            slot = self._slots.get(timeout=SESSION_SLOT_WAIT_S)
        except queue.Empty:
            raise self._no_free_slot() from None
        try:
            if self._closed:
                raise SandboxError("this sandbox is closed")
            self._fit(slot, limits)
            session = _ContainerSession(self, slot, limits)
            started = self._run_in_slot(slot, ["/bin/true"], files, b"", limits, keep=True)
            if not started.ok:
                raise SandboxError(f"the sandbox session could not start: {started.describe()}")
        except BaseException:
            self._discard(slot)
            self._slots.put(slot)
            raise
        return session

    def close(self) -> None:
        """Remove every container of this sandbox (open sessions' too); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for slot in self._all_slots:
            self._discard(slot)
        with contextlib.suppress(Exception):
            self._client.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class _ContainerSession(SandboxSession):
    """A session in one slot's container: executions run with `keep`, so /work and /tmp persist;
    closing runs one execution without it (the agent wipes and checks the scratch dirs) and gives
    the slot back, or removes the container if it could not be cleaned."""

    def __init__(self, sandbox: ContainerSandbox, slot: _Slot, limits: Limits):
        super().__init__(limits)
        self._sandbox, self._slot = sandbox, slot
        self._lock = threading.Lock()

    def _run(self, command: list[str], stdin: bytes, limits: Limits) -> ExecutionResult:
        with self._lock:
            if self._closed or self._slot.container is None:
                raise SandboxError("this sandbox session is closed or its container is gone")
            return self._sandbox._run_in_slot(self._slot, command, {}, stdin, limits, keep=True)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slot, sandbox = self._slot, self._sandbox
            try:
                if slot.container is not None and not sandbox._closed:
                    sandbox._run_in_slot(slot, ["/bin/true"], {}, b"", self.limits)  # wipes (or discards)
            except SandboxError:
                sandbox._discard(slot)
            finally:
                sandbox._slots.put(slot)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
