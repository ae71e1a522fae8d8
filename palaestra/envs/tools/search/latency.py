"""How long the search env takes: building its corpus and index, and each `search` and `open` step.

`step_latency()` is what `benchmarks/tools.py` calls for the search env's row; it plays the expert
(which searches and opens documents, then answers) through `env.step`, so every number includes
parsing the call, checking its arguments, running it and formatting the result.
"""

from __future__ import annotations

import statistics
import time

import palaestra
from palaestra.envs.tools.search.documents import make_corpus
from palaestra.envs.tools.search.index import build_retriever

__all__ = ["step_latency"]


def _ms(seconds: list[float], q: float) -> float:
    return (
        1000 * statistics.quantiles(seconds, n=100, method="inclusive")[int(q * 100) - 1] if seconds else 0.0
    )


def step_latency(level: int = 3, *, world: int = 0, episodes: int = 50) -> dict[str, float]:
    """Time the env's tool steps over `episodes` expert episodes (seeds 0..episodes-1).

    Returns:
        corpus_s: generating the world's documents (no cache).
        index_build_s: indexing them with BM25 (what a cold cache costs once per world).
        make_s: `palaestra.make` of the env (corpus and index from this process's caches).
        search_ms_p50, search_ms_p90, open_ms_p50, open_ms_p90: per `env.step` of one call.
        steps: the tool steps timed.
    """
    start = time.perf_counter()
    corpus = make_corpus.__wrapped__(world)
    corpus_s = time.perf_counter() - start
    start = time.perf_counter()
    build_retriever(corpus)
    index_build_s = time.perf_counter() - start
    start = time.perf_counter()
    env = palaestra.make("palaestra/Tool-Search-v0", world=world, level=level)
    make_s = time.perf_counter() - start
    times: dict[str, list[float]] = {"search": [], "open": []}
    try:
        for seed in range(episodes):
            _, info = env.reset(seed=seed)
            done = False
            while not done:
                start = time.perf_counter()
                _, _, terminated, truncated, info = env.step(info["expert_action"])
                elapsed = time.perf_counter() - start
                done = terminated or truncated
                for message in info.get("tool_messages", ()):
                    times[message["name"]].append(elapsed)
    finally:
        env.close()
    return {
        "corpus_s": corpus_s,
        "index_build_s": index_build_s,
        "make_s": make_s,
        "search_ms_p50": _ms(times["search"], 0.5),
        "search_ms_p90": _ms(times["search"], 0.9),
        "open_ms_p50": _ms(times["open"], 0.5),
        "open_ms_p90": _ms(times["open"], 0.9),
        "steps": float(len(times["search"]) + len(times["open"])),
    }
