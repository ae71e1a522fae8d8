"""Tool envs: what the env adds around each tool call, against the same call made without it.

1. MCP round trip: one call of the bundled calculator's `add` through `env.step` of
   `palaestra/Tool-MCP-v0` (parse the reply, check the arguments, the call on the env's event loop,
   the tool message) against the same call on an `mcp` client session (the anchor), both from one
   synchronous caller that runs each side's event loop for the call, alternately, medians.
   Goal: <= 1.2x.
2. Terminal command latency on each sandbox backend: `env.step` of a `run` call and the sandbox
   session's round trip alone, against a bare `subprocess.run` of the same command on the host (the
   anchor). The docker row runs when an engine answers (`PALAESTRA_DOCKER_HOST`, or
   `bash scripts/sandbox-engine.sh`).
3. Search env: `env.step` of the expert's `search` and `open` calls against the same BM25 query and
   document lookup made on the env's index directly (the anchor); plus the one-time costs of a world
   (generating the corpus, building the index).

    python benchmarks/tools.py --quick     # ~1 min
    python benchmarks/tools.py             # the numbers in benchmarks/README.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f}"


def mcp_round_trip(calls: int) -> list[list[str]]:
    from palaestra.envs.tools.mcp.roundtrip import measure_round_trip

    result = measure_round_trip(calls)
    verdict = "ok" if result.ratio <= 1.2 else "over the 1.2x goal"
    return [
        ["MCP `add` round trip", _ms(result.direct_s), _ms(result.env_s), f"{result.ratio:.2f}x ({verdict})"]
    ]


def _docker_sandbox() -> dict[str, str] | None:
    url = os.environ.get("PALAESTRA_DOCKER_HOST")
    if not url:
        return None
    return {
        "backend": "docker",
        "engine_url": url,
        "image": os.environ.get("SANDBOX_IMAGE", "palaestra-sandbox:test"),
    }


def terminal(repeats: int) -> list[list[str]]:
    from palaestra.envs.tools.terminal.latency import terminal_latency

    rows = []
    backends: list[tuple[str, dict[str, str] | None]] = [("local", None)]
    docker = _docker_sandbox()
    if docker is not None:
        backends.append(("docker", docker))
    else:
        print(
            "docker: no engine (set PALAESTRA_DOCKER_HOST, e.g. after bash scripts/sandbox-engine.sh)",
            file=sys.stderr,
        )
    for name, sandbox in backends:
        for command in ("echo hello", "grep -c ERROR logs/*.log; ls -la"):
            t = terminal_latency(command, sandbox=sandbox, repeats=repeats)
            anchor = t["subprocess"].median_s
            rows.append(
                [
                    f"terminal `{command}`, {name}",
                    _ms(anchor),
                    f"{_ms(t['env_step'].median_s)} (session alone {_ms(t['session'].median_s)})",
                    f"+{_ms(t['env_step'].median_s - anchor)} ms",
                ]
            )
    return rows


def search(episodes: int) -> tuple[list[list[str]], dict[str, float]]:
    import palaestra
    from palaestra.envs.tools.search.latency import step_latency
    from palaestra.tools import get_tool_parser

    once = step_latency(3, episodes=1)  # corpus and index from scratch, once
    env = palaestra.make("palaestra/Tool-Search-v0-hard")
    index, corpus = env.unwrapped.index, env.unwrapped.corpus
    parser = get_tool_parser("auto")
    times: dict[str, list[tuple[float, float]]] = {"search": [], "open": []}
    try:
        for seed in range(episodes):
            _, info = env.reset(seed=seed)
            done = False
            while not done:
                (call,) = parser.parse(str(info["expert_action"])).calls or (None,)
                start = time.perf_counter()
                _, _, terminated, truncated, info = env.step(info["expert_action"])
                step_s = time.perf_counter() - start
                done = terminated or truncated
                if call is None:
                    continue
                start = time.perf_counter()
                if call.name == "search":
                    index.search(call.arguments["query"], int(call.arguments.get("k", 5)))
                else:
                    doc = corpus.get(call.arguments["doc_id"])
                    assert doc is not None and doc.text
                times[call.name].append((step_s, time.perf_counter() - start))
    finally:
        env.close()
    rows = []
    for name, pairs in times.items():
        step = statistics.median(p[0] for p in pairs)
        direct = statistics.median(p[1] for p in pairs)
        label = "BM25 query on the index" if name == "search" else "document lookup"
        rows.append(
            [f"search env `{name}` ({label} as anchor)", _ms(direct), _ms(step), f"+{_ms(step - direct)} ms"]
        )
    return rows, once


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    calls, repeats, episodes = (30, 10, 5) if args.quick else (300, 50, 50)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    rows = mcp_round_trip(calls) + terminal(repeats)
    search_rows, once = search(episodes)
    rows += search_rows
    header = ["operation", "anchor ms (median)", "through the env ms (median)", "env / added"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print(
        f"\nsearch world 0, once per process and cache: corpus {once['corpus_s']:.2f} s, "
        f"BM25 index build {once['index_build_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
