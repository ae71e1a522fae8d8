"""`palaestra serve` on loopback: per-step overhead, sessions per 24 GiB, throughput, lost steps.

The server is `palaestra serve` in its own process (as users run it); clients run in this process.

1. Per-step overhead: the same game env (Wordle, the same fixed guesses) stepped in process
   (`palaestra.make`) and through `RemoteEnv` (what a rollout uses) on one session; the anchor is the
   in-process step. Goal: <= 1 ms added at the median.
2. Sessions per 24 GiB: open N sessions (each reset once) of a game env and of a web env (real
   Chromium), measure the server's memory (PSS of the server and its children, Chromium's included)
   before and after, and extrapolate to 24 GiB. Goals: >= 1,000 game, >= 32 web sessions.
3. Steps/s with 64 concurrent clients (openenv-core's async `GenericEnvClient`), game env.
4. Lost or duplicated steps: clients step until 100,000 steps are answered, each dropping its
   connection at random (0.5% of steps: a TCP abort before sending, an abort with a step in flight, or
   a clean close) and reconnecting. Every answer's `info["turn"]` must be the client's count of steps
   answered in that episode plus one (a lost step skips a number, a duplicated one repeats it).

    python benchmarks/env_server.py --quick     # ~1 min: 200 game / 8 web sessions, 20,000 steps
    python benchmarks/env_server.py             # 1,000 game / 32 web sessions, 100,000 steps
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GAME = "palaestra/Game-Wordle-v0"
WEB = "palaestra/Web-ClickButton-v0"
GUESSES = ["[crane]", "[slate]", "[pious]", "[mound]", "[light]", "[brick]"]
GIB = 1 << 30


def start_server(env_id: str, max_sessions: int) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # faulthandler on SIGUSR1: `kill -USR1 PID` prints where a stuck server is
    boot = "import faulthandler, signal; faulthandler.register(signal.SIGUSR1); from palaestra.cli import main; main()"
    cmd = [sys.executable, "-c", boot, "serve", env_id, "--port", "0"]
    cmd += ["--max-sessions", str(max_sessions), "--idle-timeout", "600"]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert server.stdout is not None
    line = server.stdout.readline()
    found = re.search(r"ws://[\d.]+:\d+", line)
    if not found:
        server.kill()
        raise RuntimeError(f"the server did not start: {line}")
    logs = server.stdout  # read on, so that a full pipe never blocks the server; its warnings go to ours
    threading.Thread(target=lambda: [sys.stderr.write(f"server: {x}") for x in logs], daemon=True).start()
    return server, found.group(0)


def memory(pid: int) -> int:
    """PSS of a process and its descendants (bytes): shared pages counted once."""
    total = 0
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_full_info().pss
    return total


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- 1. per-step overhead ---------------------------------------------------------------------------
def step_times(env, steps: int) -> list[float]:
    times, seed, done = [], 0, True
    for i in range(steps):
        if done:
            env.reset(seed=seed)
            seed += 1
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(GUESSES[i % len(GUESSES)])
        times.append(time.perf_counter() - start)
        done = terminated or truncated
    return times


def overhead(url: str, steps: int) -> dict[str, float]:
    import palaestra
    from palaestra.envs.remote import RemoteEnv

    local = palaestra.make(GAME)
    remote = RemoteEnv(url, GAME)
    step_times(remote, 50), step_times(local, 50)  # warm up
    t_local, t_remote = step_times(local, steps), step_times(remote, steps)
    local.close(), remote.close()
    return {
        "local_p50_ms": statistics.median(t_local) * 1e3,
        "local_p90_ms": pct(t_local, 0.9) * 1e3,
        "served_p50_ms": statistics.median(t_remote) * 1e3,
        "served_p90_ms": pct(t_remote, 0.9) * 1e3,
    }


# -- 2. sessions per 24 GiB -------------------------------------------------------------------------
async def open_sessions(url: str, env_id: str, n: int, at_once: int) -> list:
    from openenv.core.generic_client import GenericEnvClient

    clients: list = []
    limit = asyncio.Semaphore(at_once)

    async def one(i: int) -> None:
        async with limit:
            client = GenericEnvClient(base_url=url, message_timeout_s=300)
            await client.connect()
            await client.reset(env_id=env_id, seed=i)
            clients.append(client)

    await asyncio.gather(*(one(i) for i in range(n)))
    return clients


def capacity(env_id: str, n: int, at_once: int) -> dict[str, float]:
    server, url = start_server(env_id, n + 8)
    try:
        if env_id == WEB:  # launch Chromium (and its warm pages) before the baseline
            asyncio.run(close_all(asyncio.run(open_sessions(url, env_id, 1, 1))))
            time.sleep(2)
        base = memory(server.pid)
        start = time.perf_counter()

        async def run() -> tuple[int, float]:
            clients = await open_sessions(url, env_id, n, at_once)
            await asyncio.sleep(1)
            used = memory(server.pid)
            await close_all(clients)
            return used, time.perf_counter() - start

        used, seconds = asyncio.run(run())
        per = (used - base) / n
        return {
            "sessions": n,
            "base_mib": base / 2**20,
            "per_session_mib": per / 2**20,
            "per_24gib": (24 * GIB - base) / per,
            "open_s": seconds,
        }
    finally:
        server.kill()
        server.wait()


async def close_all(clients: list) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


# -- 3 and 4. throughput, lost and duplicated steps -------------------------------------------------
async def load(url: str, clients: int, *, seconds: float | None, steps: int | None, drop_rate: float) -> dict:
    from openenv.core.generic_client import GenericEnvClient

    stats = {
        "answered": 0,
        "lost": 0,
        "duplicated": 0,
        "drops": 0,
        "in_flight_drops": 0,
        "episodes": 0,
        "errors": 0,
    }
    first_error: list[str] = []
    latencies: list[float] = []
    deadline = None if seconds is None else time.perf_counter() + seconds

    def more() -> bool:
        if deadline is not None:
            return time.perf_counter() < deadline
        return stats["answered"] < (steps or 0)

    async def client_loop(k: int) -> None:
        rng = random.Random(k)
        while more():
            try:
                await session(rng)
            except Exception as exc:  # a connection the server (or a starved client) dropped
                stats["errors"] += 1
                first_error[:] = first_error or [f"{type(exc).__name__}: {exc}"]

    async def session(rng: random.Random) -> None:
        client = GenericEnvClient(base_url=url, message_timeout_s=120)
        try:
            await client.connect()
            await episodes(client, rng)
        finally:
            if client._ws is not None:
                with contextlib.suppress(Exception):
                    await client.close()

    async def episodes(client, rng: random.Random) -> None:
        result = await client.reset(env_id=GAME, seed=rng.randrange(2**31))
        turn, stats["episodes"] = 0, stats["episodes"] + 1
        while more():
            if rng.random() < drop_rate:  # drop the connection: abort, abort mid-step, or close
                kind = rng.randrange(3)
                stats["drops"] += 1
                if kind == 1:
                    await client._send({"type": "step", "data": {"text": GUESSES[turn % 6]}})
                    stats["in_flight_drops"] += 1
                if kind < 2:
                    client._ws.transport.abort()
                    client._ws = None
                return
            start = time.perf_counter()
            result = await client.step({"text": GUESSES[turn % len(GUESSES)]})
            latencies.append(time.perf_counter() - start)
            stats["answered"] += 1
            got = result.observation["info"]["turn"]
            if got > turn + 1:
                stats["lost"] += got - turn - 1
            elif got <= turn:
                stats["duplicated"] += 1
            turn = got
            if result.done:
                result = await client.reset(env_id=GAME, seed=rng.randrange(2**31))
                turn, stats["episodes"] = 0, stats["episodes"] + 1

    start = time.perf_counter()
    await asyncio.gather(*(client_loop(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    return {
        **stats,
        "first_error": first_error[0] if first_error else "",
        "seconds": elapsed,
        "steps_per_s": stats["answered"] / elapsed,
        "p50_ms": statistics.median(latencies) * 1e3,
    }


def progress(phase: str) -> None:
    print(
        f"{time.strftime('%H:%M:%S')} {phase} (load average {os.getloadavg()[0]:.1f})",
        file=sys.stderr,
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (~1 min on 2 cores)")
    parser.add_argument("--skip-web", action="store_true", help="no web env (no Chromium here)")
    args = parser.parse_args()
    game_n, web_n, total = (200, 8, 20_000) if args.quick else (1000, 32, 100_000)
    overhead_steps, load_s = (500, 5.0) if args.quick else (3000, 20.0)

    faulthandler.dump_traceback_later(600, repeat=True)  # a hang shows where it is stuck
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / GIB:.0f} GiB; load average {os.getloadavg()[0]:.1f}"
    )
    server, url = start_server(GAME, 256)
    try:
        progress("overhead")
        o = overhead(url, overhead_steps)
        progress("throughput")
        throughput = asyncio.run(load(url, 64, seconds=load_s, steps=None, drop_rate=0.0))
        threads_before = psutil.Process(server.pid).num_threads()
        progress("churn")
        churn = asyncio.run(load(url, 64, seconds=None, steps=total, drop_rate=0.005))
        time.sleep(2)
        threads_after = psutil.Process(server.pid).num_threads()
    finally:
        server.kill()
        server.wait()
    progress("game sessions")
    game = capacity(GAME, game_n, 50)
    progress("web sessions")
    web = None if args.skip_web else capacity(WEB, web_n, 4)
    progress("done")

    print("\n| metric | in process (anchor) | served | goal |")
    print("|---|---|---|---|")
    added = o["served_p50_ms"] - o["local_p50_ms"]
    print(
        f"| step p50 / p90, ms ({overhead_steps} steps, Wordle) | {o['local_p50_ms']:.3f} / {o['local_p90_ms']:.3f} "
        f"| {o['served_p50_ms']:.3f} / {o['served_p90_ms']:.3f} | |"
    )
    print(f"| added per step, p50 | | {added:.3f} ms | <= 1 ms |")
    for name, c, goal in (("game (Wordle)", game, 1000), ("web (ClickButton, Chromium)", web, 32)):
        if c is None:
            continue
        print(
            f"| {name}: sessions opened, memory per session | | {c['sessions']}, {c['per_session_mib']:.2f} MiB "
            f"(server base {c['base_mib']:.0f} MiB, opened in {c['open_s']:.1f} s) | |"
        )
        print(f"| {name}: sessions per 24 GiB (extrapolated) | | {c['per_24gib']:,.0f} | >= {goal:,} |")
    print(
        f"| steps/s, 64 clients ({load_s:g} s) | | {throughput['steps_per_s']:,.0f} (p50 {throughput['p50_ms']:.1f} ms) | |"
    )
    print(
        f"| answered steps with random disconnects | | {churn['answered']:,} in {churn['seconds']:.0f} s, "
        f"{churn['drops']} drops ({churn['in_flight_drops']} with a step in flight), {churn['episodes']} episodes | |"
    )
    print(f"| lost / duplicated steps | | {churn['lost']} / {churn['duplicated']} | 0 / 0 |")
    for name, r in (("throughput", throughput), ("churn", churn)):
        if r["errors"]:
            print(f"| {name}: connections lost unasked | | {r['errors']} (first: {r['first_error']}) | 0 |")
    print(f"| server threads after the churn (before) | | {threads_after} ({threads_before}) | |")


if __name__ == "__main__":
    main()
