"""Terminal command latency: a command through `TerminalEnv.step` vs. a bare `subprocess.run` of it.

`benchmarks/tools.py` calls `terminal_latency` once per sandbox backend:

    from palaestra.envs.tools.terminal.latency import terminal_latency
    for name, t in terminal_latency(sandbox={"backend": "docker"}).items():
        print(name, t.median_s, t.p90_s)

Three timings of the same command, each repeated:
    subprocess   `subprocess.run(["bash", "-c", command])` on the host: the anchor
    session      `SandboxSession.run` of it in the sandbox (the backend's round trip alone)
    env_step     `env.step(<run call>)`: parsing the reply, the shell wrapper (cwd, exports) and
                 the session round trip, as an agent sees it
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from palaestra.sandbox import Sandbox, SandboxConfig
from palaestra.tools import ToolCall

__all__ = ["Latency", "terminal_latency"]


@dataclass(frozen=True)
class Latency:
    """Wall times of `n` repetitions of one operation."""

    median_s: float
    p90_s: float
    n: int

    @classmethod
    def of(cls, fn: Callable[[], object], repeats: int) -> Latency:
        fn()  # warm-up: first-use costs (a container's creation) are not the steady state
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        times.sort()
        return cls(statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))], repeats)


def terminal_latency(
    command: str = "echo hello",
    *,
    sandbox: SandboxConfig | dict | Sandbox | None = None,
    repeats: int = 30,
    task_id: str = "files-archive-logs",
) -> dict[str, Latency]:
    """Latency of `command`: {"subprocess", "session", "env_step"} (see the module docstring).

    Args:
        command: a shell command that exits 0.
        sandbox: the env's sandbox (config, dict or instance; default: the local backend).
        repeats: timed repetitions of each (after one warm-up).
        task_id: the episode's task (its files are in the work dir).
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats}; it must be >= 1")
    from palaestra.envs.tools.terminal.env import TerminalEnv

    kwargs: dict[str, Any] = {"max_turns": 3 * repeats + 4}
    if sandbox is not None:
        kwargs["sandbox"] = sandbox
    env = TerminalEnv(**kwargs)
    try:
        env.reset(seed=0, options={"task_id": task_id})
        reply = env.format_calls([ToolCall("run", {"command": command})])
        session = env.shell.session

        def bare() -> None:
            subprocess.run(["bash", "-c", command], capture_output=True, check=True)

        def in_session() -> None:
            if not session.run(["bash", "-c", command]).ok:
                raise RuntimeError(f"{command!r} failed in the sandbox")

        def step() -> None:
            observation, *_ = env.step(reply)
            if not observation.endswith("[exit status 0]"):
                raise RuntimeError(f"{command!r} failed through the env: {observation[-200:]}")

        return {
            "subprocess": Latency.of(bare, repeats),
            "session": Latency.of(in_session, repeats),
            "env_step": Latency.of(step, repeats),
        }
    finally:
        env.close()
