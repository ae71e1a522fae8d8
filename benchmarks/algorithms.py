"""Does each agentic algorithm's mechanism help? Plain GRPO against the algorithm, same everything else.

Comparisons (docs/algorithms.md; issue 8), each on an env where the mechanism should matter:
    arpo          ARPO vs GRPO on a sparse-reward web task (most GRPO groups all-fail), fixed task pool
                  for both (replay needs tasks to recur)
    semi_online   semi-online RL (UI-S1) vs GRPO on a multi-step web task with a scripted expert
                  (ClickSequence: 2-4 clicks in a stated order)
    critique      Critique-GRPO (rule critic with the reference answer) vs GRPO on arithmetic
    gigpo         GiGPO vs GRPO on FrozenLake (states recur within a group)

Both arms of a comparison share the model, seeds, task stream, group size, token budget, learning rate
and number of steps; only `algorithm.*` differs (GRPO uses its own defaults, DAPO-style). The metric is
held-out online success (greedy, the env's own `success`), evaluated before training and every
`--eval-every` steps; semi-online also logs SOP. Each (comparison, arm, seed) is one training run under
`--out`; the script writes `results.json`, prints a table (mean ± std over seeds of the final success and
of its change from the start) and saves `curves.png` (mean ± std success curves per comparison).

Run (from the repository root; web comparisons need Chromium for Playwright, see docs/web.md):
    python benchmarks/algorithms.py                                   # all four, 3 seeds
    python benchmarks/algorithms.py --only critique gigpo --steps 4 --seeds 0 1 2
    python benchmarks/algorithms.py --model tiny-random --steps 2     # plumbing check, seconds per run
    python benchmarks/algorithms.py --model tiny-random --warm-start-sft 250 --warm-start-lr 3e-3 \
        --eval-temperature 1.0 --only arpo --steps 20    # SFT on expert demos first: groups mix outcomes
    python benchmarks/algorithms.py --only gigpo --out runs/b2 && \
        python benchmarks/algorithms.py --only critique --also runs/b2/results.json   # split, one table
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

COMPARISONS: dict[str, dict[str, Any]] = {
    "arpo": {
        "env": {"id": "palaestra/Web-ClickButton-v0"},
        "rollout": {"max_turns": 3, "task_pool": 8},  # replay needs tasks to recur
        "arms": {
            "grpo": {"name": "grpo"},
            "arpo": {"name": "arpo"},
        },
    },
    "semi_online": {
        # clicks only (2-4 in order): a small model can match some expert steps; Login's typed
        # credentials must be copied verbatim, which a tiny model never does (match rate 0)
        "env": {"id": "palaestra/Web-ClickSequence-v0"},
        "rollout": {"max_turns": 6},
        "arms": {
            "grpo": {"name": "grpo"},
            "semi_online": {"name": "semi_online", "min_return_std": None},
        },
    },
    "critique": {
        "env": {"id": "palaestra/Math-ArithEasy-v0", "kwargs": {"split": "train"}},
        "eval_kwargs": {"split": "test"},
        "rollout": {"max_turns": 1},
        "arms": {
            "grpo": {"name": "grpo"},
            "critique_grpo": {"name": "critique_grpo", "critic": "ground_truth"},
        },
    },
    "gigpo": {
        "env": {"id": "palaestra/Game-FrozenLake-v0", "kwargs": {"difficulty": "easy"}},
        "rollout": {"max_turns": 8},
        "arms": {
            "grpo": {"name": "grpo"},
            "gigpo": {"name": "gigpo"},
        },
    },
}


def _config(args: argparse.Namespace, name: str, arm: str, seed: int) -> Any:
    from palaestra.config import load_config

    spec = COMPARISONS[name]
    env = spec["env"]
    algorithm = dict(spec["arms"][arm])
    if name == "arpo" and arm == "grpo":  # ARPO's own loss with replay off: only replay differs
        algorithm = {"name": "arpo", "buffer_capacity": 1, "success_threshold": 2.0}
    eval_kwargs = spec.get("eval_kwargs", env.get("kwargs", {}))
    return load_config(
        None,
        [],
        run={
            "name": f"{name}/{arm}/seed{seed}",
            "output_dir": str(args.out),
            "steps": args.steps,
            "seed": seed,
        },
        model={"name": args.model},
        envs={
            "train": [env],
            "eval": [
                {"id": env["id"], "kwargs": eval_kwargs, "episodes": args.eval_episodes, "seed": 100_000}
            ],
        },
        rollout={
            "tasks_per_step": args.tasks_per_step,
            "group_size": args.group_size,
            "max_new_tokens": args.max_new_tokens,
            **spec.get("rollout", {}),
        },
        algorithm=algorithm,
        optimizer={"lr": args.lr},
        eval={"every": args.eval_every, "before_training": True, "temperature": args.eval_temperature},
        logging={"tensorboard": False, "progress": False},
        checkpoint={"every": 0},
    )


def _initial_model(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Trainer kwargs for the untrained model: a tiny random Llama, or {} (load `--model`)."""
    if args.model != "tiny-random":
        return {}
    from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    return {"model": build_tiny_model(tok, seed=seed), "tokenizer": tok}


def warm_start(args: argparse.Namespace, name: str) -> Path:
    """SFT the model on the expert's demos of comparison `name`'s train env; export it once, reuse it.

    Demos: `--warm-start-demos` episodes of the env's scripted expert (seeds 10_000.., `palaestra demos`),
    written to OUT/warm_start/NAME/demos.parquet; `--warm-start-sft` optimizer steps of `SFTTrainer`
    (batch `--warm-start-batch`, lr `--warm-start-lr`); the model (seed 0) goes to OUT/warm_start/NAME/model
    with its held-out success in sft.json. Both arms and every seed start from that folder.
    """
    from palaestra.io import atomic_write_json
    from palaestra.rollout.demos import collect_demos, write_demos
    from palaestra.trainers.sft import SFTTrainer, demo_rows

    folder = args.out / "warm_start" / name
    if (folder / "model" / "config.json").exists():
        return folder / "model"
    env = COMPARISONS[name]["env"]
    start = time.perf_counter()
    demos = collect_demos(
        env["id"], episodes=args.warm_start_demos, seed=10_000, env_kwargs=env.get("kwargs")
    )
    write_demos(demos, folder)
    cfg = _config(args, name, "grpo", 0).model_copy(deep=True)
    cfg.run.output_dir, cfg.run.name = str(args.out / "warm_start"), name
    trainer = SFTTrainer(
        cfg,
        steps=args.warm_start_sft,
        lr=args.warm_start_lr,
        batch_size=args.warm_start_batch,
        **_initial_model(args, 0),
    )
    rows = demo_rows(demos.trajectories, trainer.tokenizer)
    history = trainer.fit(rows)
    metrics, _ = trainer.evaluate()
    trainer.export(folder / "model")
    summary = {
        "demos": len(rows),
        "steps": args.warm_start_sft,
        "nll_first": history[0]["loss/nll"],
        "nll_last": history[-1]["loss/nll"],
        "seconds": time.perf_counter() - start,
        **metrics,
    }
    atomic_write_json(folder / "sft.json", summary)
    print(f"warm start {name}: {summary}", file=sys.stderr, flush=True)
    return folder / "model"


def _run(args: argparse.Namespace, name: str, arm: str, seed: int) -> dict[str, Any]:
    from palaestra.trainers import make_trainer

    cfg = _config(args, name, arm, seed)
    kwargs: dict[str, Any] = _initial_model(args, seed)
    if args.warm_start_sft:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = warm_start(args, name)
        kwargs = {
            "model": AutoModelForCausalLM.from_pretrained(path),
            "tokenizer": AutoTokenizer.from_pretrained(path),
        }
    start = time.perf_counter()
    out = make_trainer(cfg, **kwargs).train(overwrite=True)  # an arm killed midway starts over (moved aside)
    key = cfg.envs.eval[0].id.split("/")[-1]
    curve = [(0, out["before"][f"eval/{key}/success"])]
    curve += [
        (i + 1, h[f"eval/{key}/success"]) for i, h in enumerate(out["history"]) if f"eval/{key}/success" in h
    ]
    if curve[-1][0] != args.steps:
        curve.append((args.steps, out["after"][f"eval/{key}/success"]))
    train = [h.get("replay/fresh_success", h.get("rollout/success", float("nan"))) for h in out["history"]]
    result = {"comparison": name, "arm": arm, "seed": seed, "curve": curve, "train_success": train}
    result["seconds"] = time.perf_counter() - start
    if f"eval/{key}/sop_score" in out["after"]:
        result["sop_score"] = out["after"][f"eval/{key}/sop_score"]
    # did the mechanism fire? its per-step diagnostics, summed or averaged over the run
    result["diagnostics"] = {
        k: (sum if k in _SUMMED else statistics.fmean)([h[k] for h in out["history"] if k in h])
        for k in sorted({k for h in out["history"] for k in h if k.startswith(_DIAGNOSTICS)})
    }
    return result


_DIAGNOSTICS = ("replay/", "semi_online/", "gigpo/", "critique/", "reward/zero_variance")
_SUMMED = {
    "replay/injected",
    "gigpo/anchor_groups",
    "gigpo/anchor_groups_signal",
    "critique/refined_groups",
}


def _fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| comparison | arm | seeds | success before | success after | change | mean train success | s/run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, spec in COMPARISONS.items():
        for arm in spec["arms"]:
            rows = [r for r in results if r["comparison"] == name and r["arm"] == arm]
            if not rows:
                continue
            before = [r["curve"][0][1] for r in rows]
            after = [r["curve"][-1][1] for r in rows]
            change = [a - b for a, b in zip(after, before, strict=True)]
            train = [statistics.fmean(r["train_success"]) for r in rows if r["train_success"]]
            secs = statistics.fmean(r["seconds"] for r in rows)
            lines.append(
                f"| {name} | {arm} | {len(rows)} | {_fmt(before)} | {_fmt(after)} | {_fmt(change)} | "
                f"{_fmt(train)} | {secs:.0f} |"
            )
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [n for n in COMPARISONS if any(r["comparison"] == n for r in results)]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for arm in COMPARISONS[name]["arms"]:
            rows = [r for r in results if r["comparison"] == name and r["arm"] == arm]
            if not rows:
                continue
            steps = [s for s, _ in rows[0]["curve"]]
            values = np.array([[v for _, v in r["curve"]] for r in rows])  # (seeds, points)
            mean, sd = values.mean(0), values.std(0, ddof=1) if len(rows) > 1 else np.zeros(len(steps))
            ax.plot(steps, mean, marker="o", label=arm)
            ax.fill_between(steps, mean - sd, mean + sd, alpha=0.2)
        ax.set_title(name)
        ax.set_xlabel("RL step")
        ax.set_ylabel("held-out success")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=list(COMPARISONS), default=list(COMPARISONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--model", default="smollm2-135m", help="model alias/path, or tiny-random")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tasks-per-step", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--eval-episodes", type=int, default=8)
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument(
        "--eval-temperature",
        type=float,
        default=0.0,
        help="held-out sampling temperature (0: greedy; 1: the policy's own success rate, which a tiny "
        "warm-started model reaches long before its greedy action is right)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench/algorithms"))
    parser.add_argument(
        "--warm-start-sft",
        type=int,
        default=0,
        metavar="STEPS",
        help="first SFT the model STEPS optimizer steps on expert demos of each comparison's env "
        "(saved once under OUT/warm_start/NAME/model); both arms and all seeds start from it (0: off)",
    )
    parser.add_argument("--warm-start-demos", type=int, default=200, help="expert episodes for the SFT")
    parser.add_argument("--warm-start-batch", type=int, default=8, help="demos per SFT step")
    parser.add_argument("--warm-start-lr", type=float, default=1e-3, help="SFT learning rate")
    parser.add_argument(
        "--also", nargs="*", type=Path, default=[], help="results.json of other runs to add to the table"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "results.json"
    results: list[dict[str, Any]] = json.loads(store.read_text()) if store.exists() else []
    done = {(r["comparison"], r["arm"], r["seed"]) for r in results}
    for name in args.only:
        for seed in args.seeds:
            for arm in COMPARISONS[name]["arms"]:
                if (name, arm, seed) in done:
                    continue
                print(f"running {name}/{arm} seed {seed}", file=sys.stderr, flush=True)
                results.append(_run(args, name, arm, seed))
                tmp = store.with_suffix(".tmp")
                tmp.write_text(json.dumps(results, indent=1))
                tmp.replace(store)  # atomic: a killed benchmark resumes where it stopped
    for extra in args.also:
        results += [
            r for r in json.loads(extra.read_text()) if (r["comparison"], r["arm"], r["seed"]) not in done
        ]
    print(table(results))
    plot(results, args.out / "curves.png")
    print(f"\ncurves: {args.out / 'curves.png'}; runs and results.json under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
