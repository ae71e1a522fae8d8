"""The hf backend's continuous batching against static batching on a long-tailed multi-turn workload.

Anchor: static batching, the hf backend before issue 18 (`HFPolicy(continuous=False)`): a batch
decodes until its last row finishes; finished rows leave it but new requests wait for the next batch.
Continuous batching lets an episode's next turn join the batch being decoded at the next step.

Workload: `--episodes` episodes of a long-tailed number of turns (1 + geometric, mean `--mean-turns`,
at most `--max-turns`); each turn appends `--obs-tokens` observation tokens to the conversation and
asks for a reply of at most `--max-new-tokens` tokens. Replies end early with a per-token chance
`--stop-chance`: the tiny random model's distribution is near uniform, so that share of its vocabulary
is made end-of-turn ids. Every request has its own seed, and a seeded row samples the same reply
whatever its batch, so both modes generate the same tokens (checked) and only the batching differs.

    python benchmarks/continuous_batching.py            # ~1 min on 2 CPU cores
    python benchmarks/continuous_batching.py --episodes 64 --max-batch-size 32
    python benchmarks/continuous_batching.py --device cuda --episodes 256 --max-batch-size 64
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from palaestra.agents import GenerationRequest, SamplingParams
from palaestra.agents.hf import HFPolicy
from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=48)
    p.add_argument("--mean-turns", type=float, default=3.0)
    p.add_argument("--max-turns", type=int, default=16)
    p.add_argument("--obs-tokens", type=int, default=24)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--stop-chance", type=float, default=0.08)
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--hidden-size", type=int, default=512, help="the random Llama's width (head dim 64)")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cuda: decode steps in the hf backend's worker thread")
    p.add_argument("--repeats", type=int, default=1, help="runs per mode, interleaved; the fastest is shown")
    return p.parse_args(argv)


def workload(args: argparse.Namespace, vocab: int) -> list[list[list[int]]]:
    """Per episode, the observation tokens of each turn (the first one holds the task prompt)."""
    rng = random.Random(args.seed)
    episodes = []
    for _ in range(args.episodes):
        turns = 1
        while turns < args.max_turns and rng.random() > 1 / args.mean_turns:
            turns += 1
        episodes.append([[rng.randrange(3, vocab) for _ in range(args.obs_tokens)] for _ in range(turns)])
    return episodes


async def run_episode(policy: HFPolicy, observations: list[list[int]], index: int, max_new: int) -> list[int]:
    context: list[int] = []
    replies: list[int] = []
    for turn, obs in enumerate(observations):
        context += obs
        sampling = SamplingParams(max_new_tokens=max_new, temperature=1.0, seed=1000 * index + turn)
        (reply,) = await policy.generate([GenerationRequest((), sampling, prompt_token_ids=context)])
        context += reply.token_ids
        replies += reply.token_ids
        await asyncio.sleep(0)  # the env's step
    return replies


def measure(policy: HFPolicy, episodes: list[list[list[int]]], max_new: int) -> dict[str, object]:
    sizes: list[int] = []
    step = policy.engine.step

    def counted(version: int):  # record each decode step's batch size
        sizes.append(len(policy.engine.rows) + len(policy.engine.waiting))
        finished = step(version)
        sizes[-1] = len(policy.engine.rows) + len(finished)
        return finished

    policy.engine.step = counted  # type: ignore[method-assign]

    async def main() -> list[list[int]]:
        try:
            return list(
                await asyncio.gather(*(run_episode(policy, e, i, max_new) for i, e in enumerate(episodes)))
            )
        finally:
            await policy.close()

    start, cpu_start = time.perf_counter(), time.process_time()
    replies = asyncio.run(main())
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    tokens = sum(map(len, replies))
    tail = sizes[len(sizes) * 3 // 4 :]
    return {
        "replies": replies,
        "wall s": wall,
        "tokens": tokens,
        "tokens/s": tokens / wall,
        "CPU s (all threads)": cpu,
        "tokens per CPU s": tokens / cpu,
        "decode steps": len(sizes),
        "rows/step": sum(sizes) / len(sizes),
        "rows/step, last quarter": sum(tail) / len(tail),
        "steps at 1 row": sum(s == 1 for s in sizes) / len(sizes),
        "prefills": policy.generate_calls,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    tok = build_tiny_tokenizer()
    model = build_tiny_model(
        tok,
        seed=args.seed,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        num_heads=args.hidden_size // 64,
        num_kv_heads=max(1, args.hidden_size // 256),
        intermediate_size=3 * args.hidden_size,
    )
    model.to(args.device).eval()
    n_stop = max(1, round(args.stop_chance * len(tok)))
    model.generation_config.eos_token_id = [tok.eos_token_id, *range(len(tok) - n_stop + 1, len(tok))]
    episodes = workload(args, len(tok) - n_stop)
    turns = sorted(len(e) for e in episodes)
    print(
        f"{args.episodes} episodes, turns min/median/max {turns[0]}/{turns[len(turns) // 2]}/{turns[-1]}, "
        f"max batch {args.max_batch_size}, up to {args.max_new_tokens} new tokens per turn, "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, dict[str, object]] = {}
    for _ in range(args.repeats):
        for label, continuous in (("static (anchor)", False), ("continuous", True)):
            policy = HFPolicy(model, tok, max_batch_size=args.max_batch_size, continuous=continuous)
            run = measure(policy, episodes, args.max_new_tokens)
            if label not in results or float(run["wall s"]) < float(results[label]["wall s"]):  # type: ignore[arg-type]
                results[label] = run
    static, cont = results["static (anchor)"], results["continuous"]
    same = static["replies"] == cont["replies"]
    rows = [k for k in static if k != "replies"]
    print(f"\n| metric | {' | '.join(results)} |\n|---|---|---|")
    for key in rows:
        cells = [f"{r[key]:.3f}" if isinstance(r[key], float) else str(r[key]) for r in results.values()]
        print(f"| {key} | {' | '.join(cells)} |")
    speedup = float(cont["tokens/s"]) / float(static["tokens/s"])  # type: ignore[arg-type]
    print(f"\ncontinuous / static tokens/s: {speedup:.2f}x; same replies in both modes: {same}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
