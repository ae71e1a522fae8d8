"""The wire protocol between the container backend and its agent (PID 1 of every sandbox container).

Host and agent talk over the container's attach stream. The engine multiplexes it (an 8-byte header:
stream id, payload length); inside the agent's stdout, and on its stdin, messages are frames of a
1-byte kind and a 4-byte length:

    host -> agent   E  marshal-ed {"argv", "files", "stdin", "rlimits"}: run one program
                    K  kill the running program (wall time or output limit hit)
    agent -> host   R  ready (after start-up)
                    1  / 2  a chunk of the program's stdout / stderr
                    X  the exit report (`AgentReport`)

The agent's side is `palaestra/sandbox/_container_agent.py`.
"""

from __future__ import annotations

import logging
import marshal
import math
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from palaestra.sandbox.api import Limits

__all__ = [
    "KILL_REQUEST",
    "AgentFrames",
    "AgentReport",
    "AgentStuck",
    "ContainerDied",
    "read_frames",
    "run_request",
]

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">cI")  # our frames: kind, payload length
_DOCKER_HEADER = struct.Struct(">BxxxI")  # the engine's attach stream: stream id, payload length
KILL_REQUEST = _HEADER.pack(b"K", 0)
"""The frame that asks the agent to kill the running program."""


class ContainerDied(Exception):
    """The attach stream ended: the container (its agent) is gone."""


class AgentStuck(Exception):
    """The agent did not report within the grace period after a kill request."""


@dataclass
class AgentFrames:
    """Splits the engine's multiplexed attach stream, then the agent's frames on its stdout."""

    raw: bytearray = field(default_factory=bytearray)
    agent: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The (kind, payload) frames that `data` completes, in order."""
        self.raw += data
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


def run_request(command: list[str], files: dict[str, bytes], stdin: bytes, limits: Limits) -> bytes:
    """The E frame that runs `command`, with the rlimits the agent's launcher sets."""
    request = {
        "argv": command,
        "files": list(files.items()),
        "stdin": stdin,
        "rlimits": [
            max(1, math.ceil(limits.cpu_time_s)),
            limits.max_file_size_mb * 2048,  # 512-byte blocks
            limits.max_open_files,
            limits.max_processes,
        ],
    }
    body = marshal.dumps(request, 4)
    return _HEADER.pack(b"E", len(body)) + body


def read_frames(sock: socket.socket, frames: AgentFrames, deadline: float) -> Iterator[tuple[bytes, bytes]]:
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
