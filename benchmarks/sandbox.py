"""The cost of isolation: sandboxed `print(1+1)` against a bare subprocess, side by side in one run.

Rows (all run `python3 -I` on the program `print(1+1)` and read its output):
    bare subprocess   the anchor: `subprocess.run([python3, -I, -c, ...], capture_output=True)`, no isolation
    local, warm       `LocalSandbox` (bubblewrap), the default: each slot's next sandbox is started in the
                      background after an execution, so a call finds one ready
    local, cold       `LocalSandbox(warm=False)`: namespaces, mounts and interpreter start on the call
    docker            the container backend (`--docker-url`), if an engine answers; else the reason

Latency: p50/p95 over `--runs` sequential calls with `--gap-ms` idle between calls (an agent's turn
takes far longer than that; the gap lets a warm slot's standby start, and every row gets the same gap).
`--gap-ms 0` measures back-to-back calls. Throughput: `--jobs` executions from `--concurrency` threads
(the sandbox gets as many slots), executions per second. Ratios are against the bare subprocess
(latency: lower is better; throughput: higher is better).

Run (from the repository root, as root for the local backend's per-slot uids and cgroups):
    python benchmarks/sandbox.py
    python benchmarks/sandbox.py --runs 50 --jobs 64 --docker-url unix:///run/palaestra-docker.sock
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from palaestra.sandbox import SandboxConfig, SandboxError, make_sandbox

PROGRAM = "print(1+1)"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _latency(call: Callable[[], str], runs: int, gap_s: float) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        time.sleep(gap_s)
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
        if out.strip() != "2":
            raise RuntimeError(f"unexpected output {out!r}")
    return _percentile(times, 0.5) * 1000, _percentile(times, 0.95) * 1000


def _throughput(call: Callable[[], str], jobs: int, concurrency: int) -> float:
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        start = time.perf_counter()
        outputs = list(pool.map(lambda _: call(), range(jobs)))
        elapsed = time.perf_counter() - start
    if any(o.strip() != "2" for o in outputs):
        raise RuntimeError("a concurrent execution returned the wrong output")
    return jobs / elapsed


def _bare(python: str) -> Callable[[], str]:
    def call() -> str:
        return subprocess.run(
            [python, "-I", "-c", PROGRAM], capture_output=True, text=True, check=True
        ).stdout

    return call


def _measure(name: str, make_call, args, results: list[dict]) -> None:
    """Measure one row; `make_call(slots)` returns (call, close)."""
    try:
        call, close = make_call(1)
        try:
            call()  # warm-up: first start, page cache
            p50, p95 = _latency(call, args.runs, args.gap_ms / 1000)
        finally:
            close()
        call, close = make_call(args.concurrency)
        try:
            call()
            throughput = _throughput(call, args.jobs, args.concurrency)
        finally:
            close()
        results.append({"name": name, "p50_ms": p50, "p95_ms": p95, "throughput": throughput})
    except (SandboxError, OSError, RuntimeError) as exc:
        results.append({"name": name, "skipped": f"{type(exc).__name__}: {exc}"})
    print(f"measured {name}", file=sys.stderr, flush=True)


def _sandbox_row(config: SandboxConfig):
    def make_call(slots: int):
        box = make_sandbox(config.model_copy(update={"max_concurrency": slots}))
        return (lambda: box.run_python(PROGRAM).stdout), box.close

    return make_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="sequential calls for the latency columns")
    parser.add_argument("--gap-ms", type=float, default=50.0, help="idle time between sequential calls")
    parser.add_argument("--jobs", type=int, default=256, help="executions for the throughput column")
    parser.add_argument("--concurrency", type=int, default=32, help="threads (and sandbox slots)")
    parser.add_argument("--python", default="/usr/bin/python3", help="interpreter for every row")
    parser.add_argument("--docker-url", default=os.environ.get("PALAESTRA_DOCKER_HOST"), help="engine socket")
    parser.add_argument("--docker-image", default="palaestra-sandbox:test")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()

    results: list[dict] = []
    _measure("bare subprocess (anchor)", lambda slots: (_bare(args.python), lambda: None), args, results)
    local = SandboxConfig(backend="local", python=args.python)
    _measure("local (bubblewrap), warm", _sandbox_row(local), args, results)
    _measure(
        "local (bubblewrap), cold", _sandbox_row(local.model_copy(update={"warm": False})), args, results
    )
    if args.docker_url:
        docker = SandboxConfig(backend="docker", engine_url=args.docker_url, image=args.docker_image)
        _measure("docker", _sandbox_row(docker), args, results)
    else:
        results.append(
            {"name": "docker", "skipped": "no engine (pass --docker-url or set PALAESTRA_DOCKER_HOST)"}
        )

    anchor = results[0]
    print(f"\nSandbox benchmark: `{PROGRAM}` with {args.python} on {platform.node()} ({os.cpu_count()} CPUs)")
    print(
        f"latency over {args.runs} sequential calls, {args.gap_ms:g} ms apart; throughput: {args.jobs} jobs, "
        f"{args.concurrency} concurrent\n"
    )
    print("| backend | p50 ms | p95 ms | p50 vs bare | executions/s | throughput vs bare |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in results:
        if "skipped" in row:
            print(f"| {row['name']} | - | - | - | - | skipped: {row['skipped']} |")
            continue
        lat = row["p50_ms"] / anchor["p50_ms"] if "p50_ms" in anchor else float("nan")
        thr = row["throughput"] / anchor["throughput"] if "throughput" in anchor else float("nan")
        print(
            f"| {row['name']} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {lat:.2f}x | "
            f"{row['throughput']:.1f} | {thr:.2f}x |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": results}, indent=2)
        )


if __name__ == "__main__":
    main()
