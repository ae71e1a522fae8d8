"""The wire protocol between the container backend and its agent (PID 1 of every sandbox container).

Host and agent talk over the container's attach stream. The engine multiplexes it (an 8-byte header:
stream id, payload length); inside the agent's stdout, and on its stdin, messages are frames of a
1-byte kind and a 4-byte length:

    host -> agent   E  marshal-ed {"argv", "files", "stdin", "rlimits"}: run one program
                    K  kill the running program (wall time or output limit hit)
    agent -> host   R  ready (after start-up)
                    1  / 2  a chunk of the program's stdout / stderr
                    X  the exit report (`AgentReport`)

The agent's side is `palaestra/sandbox/_container_agent.py`. The local backend's sessions run the same
agent as PID 1 of a long-lived bubblewrap sandbox and talk to it over plain pipes (no engine
multiplexing: `AgentFrames(multiplexed=False)`). An E request with `keep` set leaves /work and /tmp as
they are after the program (a session's next execution sees them); without it the agent wipes them.
"""

from __future__ import annotations

import logging
import marshal
import math
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from palaestra.sandbox.api import ExecutionResult, LimitKind, Limits, OutputBuffer
from palaestra.sandbox.cgroups import CgroupUsage
from palaestra.sandbox.exit_status import decode_status, limit_from_status

__all__ = [
    "KILL_REQUEST",
    "AgentFrames",
    "AgentReport",
    "AgentStuck",
    "Channel",
    "ContainerDied",
    "Exchange",
    "exchange",
    "read_frames",
    "run_request",
]

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">cI")  # our frames: kind, payload length
_DOCKER_HEADER = struct.Struct(">BxxxI")  # the engine's attach stream: stream id, payload length
KILL_REQUEST = _HEADER.pack(b"K", 0)
"""The frame that asks the agent to kill the running program."""


class Channel(Protocol):
    """Where the agent's frames come from and requests go to: a socket, or pipes made to look like one."""

    def fileno(self) -> int: ...

    def recv(self, size: int, /) -> bytes: ...

    def sendall(self, data: bytes, /) -> None: ...


class ContainerDied(Exception):
    """The attach stream ended: the container (its agent) is gone."""


class AgentStuck(Exception):
    """The agent did not report within the grace period after a kill request."""


@dataclass
class AgentFrames:
    """Splits the engine's multiplexed attach stream, then the agent's frames on its stdout."""

    raw: bytearray = field(default_factory=bytearray)
    agent: bytearray = field(default_factory=bytearray)
    multiplexed: bool = True
    """Whether `data` comes in the engine's attach-stream envelope (False: the agent's stdout itself)."""

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The (kind, payload) frames that `data` completes, in order."""
        if self.multiplexed:
            self.raw += data
        else:
            self.agent += data
        while len(self.raw) >= _DOCKER_HEADER.size:
            stream, size = _DOCKER_HEADER.unpack_from(self.raw)
            if len(self.raw) < _DOCKER_HEADER.size + size:
                break
            payload = bytes(self.raw[_DOCKER_HEADER.size : _DOCKER_HEADER.size + size])
            del self.raw[: _DOCKER_HEADER.size + size]
            if stream == 2:  # the agent's own stderr: a traceback if it crashed
                logger.warning("sandbox agent: %s", payload.decode(errors="replace").rstrip())
            else:
                self.agent += payload
        while len(self.agent) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self.agent)
            if len(self.agent) < _HEADER.size + size:
                break
            payload = bytes(self.agent[_HEADER.size : _HEADER.size + size])
            del self.agent[: _HEADER.size + size]
            yield kind, payload


@dataclass(frozen=True)
class AgentReport:
    """The agent's exit report (its X frame): wait status, counters, and a setup error if any."""

    status: int
    duration_s: float
    cpu_s: float
    oom_kills: int
    pids_max_events: int
    clean: bool
    setup_error: str

    @classmethod
    def parse(cls, payload: bytes) -> AgentReport:
        """Read an X frame's payload."""
        head, _, rest = payload.partition(b"\n")
        status, duration, cpu, oom, pids, clean = head.split()
        text = rest.decode("utf-8", "replace")
        return cls(int(status), float(duration), float(cpu), int(oom), int(pids), clean == b"1", text)


def run_request(
    command: list[str], files: dict[str, bytes], stdin: bytes, limits: Limits, *, keep: bool = False
) -> bytes:
    """The E frame that runs `command`, with the rlimits the agent's launcher sets; `keep` leaves
    the scratch dirs as the program left them (a session's executions)."""
    request = {
        "argv": command,
        "files": list(files.items()),
        "stdin": stdin,
        "keep": keep,
        "rlimits": [
            max(1, math.ceil(limits.cpu_time_s)),
            limits.max_file_size_mb * 2048,  # 512-byte blocks
            limits.max_open_files,
            limits.max_processes,
        ],
    }
    body = marshal.dumps(request, 4)
    return _HEADER.pack(b"E", len(body)) + body


def read_frames(
    sock: socket.socket | Channel, frames: AgentFrames, deadline: float
) -> Iterator[tuple[bytes, bytes]]:
    """The agent's frames as they come; stops at `deadline` or raises `ContainerDied` when the stream ends."""
    while True:
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            continue
        data = sock.recv(1 << 16)
        if not data:
            raise ContainerDied()
        yield from frames.feed(data)


@dataclass
class Exchange:
    """One execution's round trip with the agent: the output, and the report or why none came."""

    out: OutputBuffer
    err: OutputBuffer
    start: float
    report: AgentReport | None = None
    stopped_by: LimitKind | None = None
    """The limit the host enforced (wall time, output) by asking the agent to kill the program."""
    lost: Exception | None = None
    """Why no report came: the agent died (`ContainerDied`), hung after a kill (`AgentStuck`), I/O."""

    def result(self, limits: Limits, usage: CgroupUsage | None) -> ExecutionResult:
        """The execution's result from the agent's report (only when `report` is set)."""
        report = self.report
        assert report is not None
        exit_code, sig = decode_status(os.waitstatus_to_exitcode(report.status))
        limit = self.stopped_by or limit_from_status(
            exit_code, sig, self.err.text(), report.cpu_s, limits, usage
        )
        return ExecutionResult(
            stdout=self.out.text(),
            stderr=self.err.text(),
            exit_code=exit_code,
            signal=sig,
            duration_s=min(report.duration_s, time.monotonic() - self.start),
            limit=limit,
            stdout_truncated=self.out.truncated,
            stderr_truncated=self.err.truncated,
        )

    def killed(self, limit: LimitKind) -> ExecutionResult:
        """The result of an execution whose agent was lost while `limit` stopped the program."""
        return ExecutionResult(
            stdout=self.out.text(),
            stderr=self.err.text(),
            exit_code=None,
            signal=9,
            duration_s=time.monotonic() - self.start,
            limit=limit,
            stdout_truncated=self.out.truncated,
            stderr_truncated=self.err.truncated,
        )


def exchange(
    channel: socket.socket | Channel,
    frames: AgentFrames,
    request: bytes,
    limits: Limits,
    *,
    kill_grace_s: float,
) -> Exchange:
    """Send `request`, relay the program's output under the output limit, ask for a kill at the wall
    time or output limit, and wait for the report (at most `kill_grace_s` after a kill request)."""
    ex = Exchange(
        OutputBuffer(limits.max_output_bytes), OutputBuffer(limits.max_output_bytes), time.monotonic()
    )
    try:
        channel.sendall(request)
        deadline = ex.start + limits.wall_time_s
        while ex.report is None:
            for kind, payload in read_frames(channel, frames, deadline):
                if kind == b"X":
                    ex.report = AgentReport.parse(payload)
                    break
                if not (ex.out if kind == b"1" else ex.err).feed(payload) and ex.stopped_by is None:
                    ex.stopped_by = "output"
                    channel.sendall(KILL_REQUEST)
                    deadline = time.monotonic() + kill_grace_s
            else:  # deadline passed
                if ex.stopped_by is not None:
                    raise AgentStuck()
                ex.stopped_by = "wall_time"
                channel.sendall(KILL_REQUEST)
                deadline = time.monotonic() + kill_grace_s
    except (ContainerDied, AgentStuck, OSError) as exc:
        ex.lost = exc
    return ex
