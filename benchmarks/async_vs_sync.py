"""Asynchronous pipeline against the synchronous trainer: same model, envs and seeds, both modes in one run.

Two envs (issue 18, point 6):
    retry     palaestra/Math-ArithRetry-v0: easy arithmetic with "try again" feedback, up to 3 attempts,
              so episodes take 1 to 3 turns (a long tail: a step waits for its slowest episode)
    latency   the same env behind `StepLatency`: each env step waits a log-normal time (median 100 ms,
              p99 2 s), as a remote tool or sandbox would; steps run in threads (rollout.step_timeout_s)

For each env and seed, `sync` (rollout.pipeline=sync) and `async` (rollout.pipeline=async,
max_staleness K) train the same model with GRPO on the same task stream. Reported per mode, mean ± std
over seeds: trained tokens/s and steps/s (tokens of every trajectory an update saw, over the training
loop's wall time, the same held-out evaluations included in both modes), the async/sync ratio of
trained tokens/s (goal: >= 1.3 on retry, >= 2 on latency), the held-out success at the end, the time
until the held-out success first reached `--target` (evaluated every `--eval-every` steps), the median
step time after the first step (async's first step also fills the pipeline) and the staleness
histogram (groups trained on whose oldest token was k versions old).

`--rss-steps N` also measures memory: one async run of N steps (tiny model, fast env), the process's
resident set size after each step; a flat curve shows the bounded queue holds memory constant.

Run (from the repository root):
    python benchmarks/async_vs_sync.py --quick                 # tiny model, 2 seeds, a few minutes
    python benchmarks/async_vs_sync.py                         # SmolLM2-135M, 3 seeds, 8 steps: ~90 min
    python benchmarks/async_vs_sync.py --quick --rss-steps 200 # and the memory curve
    python benchmarks/async_vs_sync.py --device cuda --shape qwen2.5-0.5b --seeds 0 --steps 6
                      # one GPU, hf backend, a model of Qwen2.5-0.5B's shape with random weights
                      # (benchmarks/shapes.py; throughput only: random weights solve nothing)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

ENVS = {
    "retry": {"id": "palaestra/Math-ArithRetry-v0", "rollout": {}},
    "latency": {"id": "bench/Math-ArithRetryLatency-v0", "rollout": {"step_timeout_s": 60.0}},
}
MODES = ("sync", "async")


class StepLatency(gym.Wrapper):
    """Each `step` first waits a log-normal time, like a call to a remote tool (seeded by `reset`).

    Args:
        env: the env to slow down.
        median_s: median wait.
        p99_s: 99th percentile of the wait (sets the log-normal's sigma).
    """

    def __init__(self, env: gym.Env, median_s: float = 0.1, p99_s: float = 2.0):
        super().__init__(env)
        self.mu = math.log(median_s)
        self.sigma = (math.log(p99_s) - self.mu) / 2.3263478740408408  # z of the 99th percentile
        self.rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.rng = np.random.default_rng(seed)
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> Any:
        time.sleep(float(self.rng.lognormal(self.mu, self.sigma)))
        return self.env.step(action)


def register_envs() -> None:
    import palaestra

    palaestra.register_env(
        "bench/Math-ArithRetryLatency-v0",
        lambda **kw: StepLatency(palaestra.make("palaestra/Math-ArithRetry-v0", **kw)),
        description="Math-ArithRetry-v0 whose steps wait a log-normal time (median 100 ms, p99 2 s)",
        max_turns=3,
        override=True,
    )


def _config(args: argparse.Namespace, env: str, mode: str, seed: int, out: Path) -> Any:
    from palaestra.config import load_config

    spec = ENVS[env]
    pipeline = {"pipeline": mode} | ({"max_staleness": args.max_staleness} if mode == "async" else {})
    return load_config(
        None,
        [],
        run={"name": f"{env}/{mode}/seed{seed}", "output_dir": str(out), "steps": args.steps, "seed": seed},
        model={"name": args.model, "device": args.device, "dtype": args.dtype, "precision": args.precision},
        envs={
            "train": [{"id": spec["id"], "kwargs": {"split": "train"}}],
            "eval": [
                {"id": spec["id"], "kwargs": {"split": "test"}, "episodes": args.eval_episodes, "seed": 10**5}
            ],
        },
        rollout={
            "tasks_per_step": args.tasks_per_step,
            "group_size": args.group_size,
            "max_new_tokens": args.max_new_tokens,
            **spec["rollout"],
            **pipeline,
        },
        optimizer={"lr": args.lr},
        eval={"every": args.eval_every, "before_training": False},
        logging={"tensorboard": False, "progress": False, "report": False},
        checkpoint={"every": 0},
    )


def _trainer(cfg: Any, model: str, seed: int) -> Any:
    from palaestra.trainers import make_trainer

    if model != "tiny-random":
        return make_trainer(cfg)
    from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    return make_trainer(cfg, model=build_tiny_model(tok, seed=seed), tokenizer=tok)


def run_one(args: argparse.Namespace, env: str, mode: str, seed: int, out: Path) -> dict[str, Any]:
    """Train one (env, mode, seed); returns its throughput, success curve and staleness counts."""
    cfg = _config(args, env, mode, seed, out)
    trainer = _trainer(cfg, args.model, seed)
    trained: list[int] = []
    step_batch = trainer.step_batch

    def counting(trajectories: list[Any]) -> Any:
        trained.append(sum(len(t.token_ids) for t in trajectories))
        return step_batch(trajectories)

    trainer.step_batch = counting
    # the training loop's wall time, held-out evaluations included: both modes run the same ones, and
    # the async producer keeps generating during them as in a real run (with evaluations left out of
    # the clock, that work would come for free: the step after each one took half the time)
    clock = {"start": 0.0, "eval": 0.0, "marks": []}
    run_steps, evaluate = trainer._run_steps, trainer._evaluate_during_training

    def timed_steps(history: list[dict[str, float]]) -> None:
        clock["start"] = time.perf_counter()
        run_steps(history)
        clock["end"] = time.perf_counter()

    def timed_eval(metrics: dict[str, float]) -> dict[str, float]:
        start = time.perf_counter()
        clock["marks"].append(start - clock["start"])  # seconds into the run
        out = evaluate(metrics)
        clock["eval"] += time.perf_counter() - start
        return out

    trainer._run_steps, trainer._evaluate_during_training = timed_steps, timed_eval
    try:
        result = trainer.train(overwrite=True)
    finally:
        trainer.close()
        for weights in ("checkpoints", "final"):  # SmolLM2's are 2.2 GB a run: 35 GB over a full run
            shutil.rmtree(trainer.run_dir / weights, ignore_errors=True)
    history = result["history"]
    seconds = clock["end"] - clock["start"]
    key = f"eval/{ENVS[env]['id'].split('/')[-1]}/success"
    marks = iter(clock["marks"])
    curve = [(step, next(marks), h[key]) for step, h in enumerate(history, 1) if key in h]
    staleness: dict[int, float] = {}
    for h in history:
        for k in range(args.max_staleness + 1):
            staleness[k] = staleness.get(k, 0.0) + h.get(f"async/staleness_groups_{k}", 0.0)
    return {
        "env": env,
        "mode": mode,
        "seed": seed,
        "steps": len(history),
        "seconds": seconds,
        "eval_seconds": clock["eval"],
        "trained_tokens": sum(trained),
        "final_success": (result["after"] or {}).get(key),
        "curve": curve,
        "step_seconds": [h["time/step_s"] for h in history if "time/step_s" in h],
        "staleness": staleness if mode == "async" else {},
        "dropped": sum(h.get("async/dropped_groups", 0.0) for h in history),
        "idle": statistics.fmean(h.get("async/idle_fraction", math.nan) for h in history),
    }


def _mean_std(values: list[float], fmt: str = "{:.2f}") -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(spread)}"


def time_to_target(result: dict[str, Any], target: float) -> float | None:
    """Training seconds until the held-out success first reached `target` (None: never)."""
    return next((seconds for _, seconds, success in result["curve"] if success >= target), None)


def steady_step_seconds(result: dict[str, Any]) -> float:
    """Median step time after the first step (async's first step also fills the pipeline)."""
    later = result["step_seconds"][1:]
    return statistics.median(later) if later else math.nan


def table(results: list[dict[str, Any]], target: float) -> str:
    """Markdown table: one row per (env, mode); ratios against sync on the same env."""
    lines = [
        "| env | mode | seeds | trained tok/s | steps/s | tok/s vs sync | final held-out success "
        f"| s to success >= {target:g} | s/step after the first | staleness groups (k=0,1,..) | dropped "
        "| learner idle |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for env in ENVS:
        rows = {m: [r for r in results if r["env"] == env and r["mode"] == m] for m in MODES}
        if not rows["sync"] and not rows["async"]:
            continue
        base = {r["seed"]: r["trained_tokens"] / r["seconds"] for r in rows["sync"]}
        for mode in MODES:
            runs = rows[mode]
            if not runs:
                continue
            tps = [r["trained_tokens"] / r["seconds"] for r in runs]
            ratio = [r["trained_tokens"] / r["seconds"] / base[r["seed"]] for r in runs if r["seed"] in base]
            reach = [time_to_target(r, target) for r in runs]
            reached = [t for t in reach if t is not None]
            hist = {}
            for r in runs:
                for k, n in r["staleness"].items():
                    hist[int(k)] = hist.get(int(k), 0) + n
            lines.append(
                f"| {env} | {mode} | {len(runs)} | {_mean_std(tps, '{:.0f}')} "
                f"| {_mean_std([r['steps'] / r['seconds'] for r in runs], '{:.3f}')} "
                f"| {_mean_std(ratio)} | {_mean_std([r['final_success'] for r in runs], '{:.3f}')} "
                f"| {_mean_std(reached, '{:.0f}') if reached else 'not reached'} ({len(reached)}/{len(runs)}) "
                f"| {_mean_std([steady_step_seconds(r) for r in runs], '{:.1f}')} "
                f"| {', '.join(f'{int(hist[k])}' for k in sorted(hist)) or '-'} "
                f"| {int(sum(r['dropped'] for r in runs))} "
                f"| {_mean_std([r['idle'] for r in runs]) if mode == 'async' else '-'} |"
            )
    return "\n".join(lines)


def rss_curve(args: argparse.Namespace, steps: int, out: Path) -> list[tuple[int, float]]:
    """(step, RSS MiB) of one async run of `steps` steps on the tiny model and a fast env."""
    import psutil

    from palaestra.config import load_config

    cfg = load_config(
        None,
        [],
        run={"name": "rss", "output_dir": str(out), "steps": steps, "seed": 0, "max_skipped_steps": None},
        envs={"train": [{"id": "palaestra/Math-ArithEasy-v0"}]},
        rollout={
            "tasks_per_step": 4,
            "group_size": 4,
            "max_new_tokens": 16,
            "pipeline": "async",
            "max_staleness": 1,
        },
        optimizer={"lr": 1e-4},
        eval={"before_training": False},
        logging={"tensorboard": False, "progress": False, "report": False},
        checkpoint={"every": 0},
    )
    trainer = _trainer(cfg, "tiny-random", 0)
    process = psutil.Process()
    curve: list[tuple[int, float]] = []
    train_step = trainer.train_step

    def measured() -> dict[str, float]:
        metrics = train_step()
        curve.append((trainer.step + 1, process.memory_info().rss / 2**20))
        return metrics

    trainer.train_step = measured
    try:
        trainer.train(overwrite=True)
    finally:
        trainer.close()
    return curve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny model, 2 seeds, 8 steps: minutes on 2 cores"
    )
    parser.add_argument("--model", default=None, help="model (default: smollm2-135m; --quick: tiny-random)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="OpenMP threads per torch thread (OMP_NUM_THREADS, unless set); default all cores, torch's "
        "own default: on a quiet 2-core machine one thread made sync 1.77x slower, an unfair anchor",
    )
    parser.add_argument(
        "--shape", default=None, help="a model shape of benchmarks/shapes.py (random weights)"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path("runs/shapes"), help="where --shape models are saved"
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--envs", nargs="+", choices=list(ENVS), default=list(ENVS))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--quick: 0 1)")
    parser.add_argument("--steps", type=int, default=None, help="RL steps per run (default 8)")
    parser.add_argument("--tasks-per-step", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 32 (--quick: 24)")
    parser.add_argument("--max-staleness", type=int, default=1, help="K of the async runs")
    parser.add_argument("--lr", type=float, default=None, help="default 2e-5 (tiny-random: 1e-3)")
    parser.add_argument("--eval-every", type=int, default=None, help="default 4 (--quick: 0, end only)")
    parser.add_argument("--eval-episodes", type=int, default=None, help="default 32 (--quick: 16)")
    parser.add_argument("--target", type=float, default=0.5, help="held-out success for time-to-target")
    parser.add_argument(
        "--rss-steps", type=int, default=0, help="also measure RSS over this many async steps"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/async_vs_sync"))
    args = parser.parse_args(argv)
    try:  # before any model loads: a bad --out is one line, not a traceback after the first run
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"--out {args.out}: {exc.strerror}")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # before torch starts its thread pools
    quick = args.quick
    if args.shape:
        import shapes  # benchmarks/shapes.py

        args.model = str(shapes.build(args.shape, args.cache / f"{args.shape}-random", device=args.device))
    args.model = args.model or ("tiny-random" if quick else "smollm2-135m")
    args.seeds = args.seeds if args.seeds is not None else ([0, 1] if quick else [0, 1, 2])
    args.steps = args.steps or 8
    args.max_new_tokens = args.max_new_tokens or (24 if quick else 32)
    args.lr = args.lr or (1e-3 if args.model == "tiny-random" else 2e-5)
    args.eval_every = args.eval_every if args.eval_every is not None else (0 if quick else 4)
    args.eval_episodes = args.eval_episodes or (16 if quick else 32)
    register_envs()
    results: list[dict[str, Any]] = []
    for env in args.envs:  # warm-up (imports, caches, first allocations), not recorded
        for mode in MODES:
            run_one(
                argparse.Namespace(**{**vars(args), "steps": 1, "eval_every": 0}),
                env,
                mode,
                0,
                args.out / "warmup",
            )
    for env in args.envs:
        for seed in args.seeds:
            # interleaved, in alternating order: the machine's load drifts alike for both modes
            for mode in MODES if seed % 2 == 0 else MODES[::-1]:
                start = time.perf_counter()
                result = run_one(args, env, mode, seed, args.out)
                results.append(result)
                print(
                    f"{env} {mode} seed {seed}: {result['trained_tokens'] / result['seconds']:.0f} trained tok/s, "
                    f"{time.perf_counter() - start:.0f} s wall",
                    file=sys.stderr,
                    flush=True,
                )
    import torch

    report = {
        "command": " ".join(sys.argv),
        "model": args.model,
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "results": results,
    }
    print(f"model {args.model}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    print(table(results, args.target))
    if args.rss_steps:
        curve = rss_curve(args, args.rss_steps, args.out)
        report["rss_mib"] = curve
        marks = [s for s in (1, 10, 50, 100, 150, 200, args.rss_steps) if s <= len(curve)]
        print("\n| async step | " + " | ".join(str(s) for s in sorted(set(marks))) + " |")
        print("|---|" + "---|" * len(set(marks)))
        print("| RSS MiB | " + " | ".join(f"{curve[s - 1][1]:.0f}" for s in sorted(set(marks))) + " |")
    (args.out / "results.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
