"""palaestra's GRPO trainer against TRL's `GRPOTrainer`, side by side on this machine's CPU.

Both trainers get the same model weights, tokenizer and chat template, the same single-turn task and
reward function (fraction of the reply's letters that are vowels), the same prompts at every step,
the same group size, completion budget, sampling (temperature 1, no top-p/top-k) and optimizer (AdamW,
constant LR, no weight decay, grad-norm clip 1.0), no KL term (TRL `beta=0.0`, ours
`algorithm.kl_coef=0`), the same clipped token-mean loss (clip 0.2/0.28; TRL `loss_type="dapo"`) and
a transformers model for sampling (no vLLM: TRL calls `model.generate`; palaestra's hf backend its own
sampler over the same model, see `palaestra/agents/decoding.py`). One optimizer step per rollout batch in both: TRL
generates `prompts_per_step x group_size` completions per optimizer step (`steps_per_generation` =
`gradient_accumulation_steps`, `num_iterations=1`), split into micro-batches of `--micro-batch` rows.

Each trainer runs in its own subprocess, so peak memory is its own. Both start together and take turns,
one RL step at a time (ABBA order: ours, TRL, TRL, ours, ...), so each step runs alone and both see
the same machine over time; on a shared machine this keeps the ratio honest where back-to-back runs
drift (`--sequential` runs one trainer after the other instead). Measured per RL step, after
`--warmup` unmeasured steps:
    step s          wall time of one RL step (ours: `Trainer.train_step()`; TRL: `on_step_begin` to
                    `on_step_end`, i.e. generation, reward, loss, backward and optimizer step)
    generation s    ours: `time/rollout_s` (envs, chat template, `generate`, logprobs, reward);
                    TRL: `_generate_and_score_completions` (tokenize, `generate`, decode, reward,
                    advantages); "sampling call s" is the sampler alone (ours: `decoding.sample`,
                    TRL: `model.generate`)
    update s        step s minus generation s (ours: also advantages, old-logprob recomputation)
    tokens/s        generated tokens / generation s; trained tokens (prompt + completion, no padding)
                    / update s
    peak RSS        `ru_maxrss` of the worker process, and VmHWM reset just before the first step
                    (the training-phase peak, without model loading and imports)
The table shows medians over the measured steps and ours/TRL ratios.

Run (from the repository root; the defaults take a few minutes on 2 cores):
    python benchmarks/grpo_vs_trl.py
    python benchmarks/grpo_vs_trl.py --model smollm2-135m --steps 3 --warmup 1 --max-new-tokens 32
    python benchmarks/grpo_vs_trl.py --json runs/bench/grpo_vs_trl.json
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import shapes

ENV_ID = "bench/Vowels-v0"
PROMPTS = [
    "Write a word.",
    "Say something with many vowels.",
    "Reply with a short sentence about the sea.",
    "Name three animals, then three colours, then three fruits.",
    "Task: write letters. Vowels score, consonants do not.",
    "What is 3 + 4? Answer in words.",
    "Give a one-line greeting to an old friend you have not seen in years.",
    "List some words that start with a vowel and end with a vowel.",
    "Describe the weather today.",
    "Write a tiny poem, two lines, no rhyme needed, about numbers and words.",
    "Spell your favourite word.",
    "Tell me a fact.",
]


def vowel_reward(text: str) -> float:
    """The task's reward: fraction of the reply's letters that are vowels (0 for no letters)."""
    letters = [c for c in text.lower() if c.isalpha()]
    return sum(c in "aeiou" for c in letters) / max(1, len(letters))


def register_env() -> type:
    """Register the single-turn task as `bench/Vowels-v0` (a prompt drawn by the reset seed)."""
    import palaestra
    from palaestra import StepOutcome, TextEnv

    class VowelsEnv(TextEnv):
        seen: ClassVar[list[str]] = []  # prompts handed out in this process, to check the schedule

        def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
            index = int(self.np_random.integers(0, len(PROMPTS)))
            VowelsEnv.seen.append(PROMPTS[index])
            return PROMPTS[index], {"task_id": str(index)}

        def _step(self, action: str) -> StepOutcome:
            reward = vowel_reward(action)
            return StepOutcome("done", reward=reward, terminated=True, success=reward > 0.5)

    palaestra.register_env(ENV_ID, VowelsEnv, description="benchmark: vowel fraction", override=True)
    return VowelsEnv


# -- measurement helpers ---------------------------------------------------------------------------
def _status_kib(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def memory_report(rss_before_kib: int) -> dict[str, float]:
    return {
        "rss_before_mib": rss_before_kib / 1024,
        "peak_rss_train_mib": _status_kib("VmHWM") / 1024,
        "peak_rss_process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def time_calls(owner: Any, name: str, sink: list[float]) -> None:
    """Wrap `owner.name` so each call's wall time is appended to `sink`."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - t0)

    setattr(owner, name, timed)


class Turns:
    """A worker's side of the turn-taking: wait for the driver's go, report done (named pipes)."""

    def __init__(self, spec: dict[str, Any], name: str):
        self.enabled = not spec["sequential"]
        if self.enabled:
            folder = Path(spec["workdir"])
            self.go = (folder / f"{name}.go").open("r")
            self.done = (folder / f"{name}.done").open("w")

    def wait(self) -> None:
        if self.enabled and not self.go.readline():
            raise SystemExit("the driver went away")

    def finished(self) -> None:
        if self.enabled:
            self.done.write("done\n")
            self.done.flush()


def load_model(spec: dict[str, Any]) -> tuple[Any, Any]:
    """Both workers load the same saved weights and tokenizer with plain transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(spec["seed"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(spec["model_dir"])


# -- workers ---------------------------------------------------------------------------------------
def cuda_peak_reset(spec: dict[str, Any]) -> None:
    if spec["device"] == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def cuda_report(spec: dict[str, Any]) -> dict[str, float]:
    """Peak GPU memory of the training phase (since `cuda_peak_reset`): allocated by tensors, and
    reserved by torch's caching allocator (what the process holds on the device)."""
    if spec["device"] != "cuda":
        return {}
    import torch

    return {
        "peak_gpu_alloc_mib": torch.cuda.max_memory_allocated() / 2**20,
        "peak_gpu_reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
    }


def run_ours(spec: dict[str, Any]) -> dict[str, Any]:
    from palaestra.config import load_config
    from palaestra.trainers import make_trainer

    env_class = register_env()
    model, tok = load_model(spec)
    p, g, total = spec["prompts_per_step"], spec["group_size"], spec["warmup"] + spec["steps"]
    cfg = load_config(
        None,
        spec["ours_overrides"],
        run={"name": "ours", "output_dir": spec["workdir"], "seed": spec["seed"], "steps": total},
        model={"name": spec["model_dir"], "device": spec["device"], "precision": spec["precision"]},
        agent={"max_batch_size": p * g},
        envs={"train": [{"id": ENV_ID}]},
        rollout={"tasks_per_step": p, "group_size": g, "max_new_tokens": spec["max_new_tokens"]},
        algorithm={"kl_coef": 0.0, "clip_low": 0.2, "clip_high": 0.28, "aggregation": "token-mean"},
        optimizer={"lr": spec["lr"], "max_grad_norm": 1.0, "micro_batch_tokens": spec["micro_batch_tokens"]},
        eval={"before_training": False},
        logging={"tensorboard": False, "progress": False},
        checkpoint={"every": 0},
    )
    trainer = make_trainer(cfg, model=model, tokenizer=tok)
    gen_times: list[float] = []
    time_calls(trainer.policy.engine, "step", gen_times)  # every decode step, continuous or static
    turns = Turns(spec, "ours")
    rss_before = _status_kib("VmRSS")
    reset_peak_rss()
    cuda_peak_reset(spec)
    steps = []
    for i in range(total):  # train_step() alone: train() adds a checkpoint and an export at the end
        env_class.seen.clear()
        turns.wait()
        n_gen, calls = len(gen_times), trainer.policy.generate_calls
        t0 = time.perf_counter()
        m = trainer.train_step()
        wall = time.perf_counter() - t0
        turns.finished()
        trainer.step += 1
        if sorted(set(env_class.seen)) != sorted(set(spec["schedule"][i])):
            raise RuntimeError(
                f"step {i}: prompts {env_class.seen} differ from the schedule {spec['schedule'][i]}"
            )
        steps.append(
            {
                "step_s": wall,
                "gen_s": m["time/rollout_s"],
                "generate_s": sum(gen_times[n_gen:]),
                "generate_calls": trainer.policy.generate_calls - calls,
                "generated_tokens": round(m["throughput/rollout_tokens_per_s"] * m["time/rollout_s"]),
                "trained_tokens": round(m["throughput/train_tokens_per_s"] * m["time/update_s"]),
                "micro_batches": m.get("update/micro_batches", float("nan")),
                "reward": m["reward/mean"],
            }
        )
        print(f"[ours] step {i}: {wall:.2f}s reward {m['reward/mean']:.3f}", file=sys.stderr, flush=True)
    return {"steps": steps, **memory_report(rss_before), **cuda_report(spec)}


def run_trl(spec: dict[str, Any]) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    model, tok = load_model(spec)
    p, g, total = spec["prompts_per_step"], spec["group_size"], spec["warmup"] + spec["steps"]
    rows = p * g
    if rows % spec["micro_batch"]:
        raise ValueError(f"--micro-batch {spec['micro_batch']} must divide prompts x group = {rows}")
    # one prompt row per task, in schedule order; not shuffled, so step i gets schedule[i]
    data = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": t}]} for s in spec["schedule"] for t in s]
    )
    seen: list[str] = []

    def reward(completions: list[list[dict[str, str]]], prompts: list[Any], **_: Any) -> list[float]:
        seen.extend(pr[-1]["content"] for pr in prompts)
        return [vowel_reward(c[0]["content"]) for c in completions]

    args = GRPOConfig(
        output_dir=str(Path(spec["workdir"]) / "trl"),
        per_device_train_batch_size=spec["micro_batch"],
        gradient_accumulation_steps=rows // spec["micro_batch"],  # = steps_per_generation: 1 update/rollout
        num_generations=g,
        num_iterations=1,
        max_completion_length=spec["max_new_tokens"],
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        learning_rate=spec["lr"],
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=1.0,
        beta=0.0,
        epsilon=0.2,
        epsilon_high=0.28,
        loss_type="dapo",
        scale_rewards="group",
        gradient_checkpointing=spec["gradient_checkpointing"],
        use_cpu=spec["device"] == "cpu",
        bf16=spec["precision"] == "bf16",  # autocast over float32 weights, as ours (model.precision)
        shuffle_dataset=False,
        max_steps=total,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        seed=spec["seed"],
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok
    )

    steps: list[dict[str, Any]] = []
    gen_times: list[float] = []
    current: dict[str, Any] = {}
    time_calls(trainer.model, "generate", gen_times)
    turns = Turns(spec, "trl")
    score = trainer._generate_and_score_completions

    def timed_score(batch: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = score(batch)
        current["gen_s"] = current.get("gen_s", 0.0) + time.perf_counter() - t0
        completion = int(out["completion_mask"].sum())
        current["generated_tokens"] = current.get("generated_tokens", 0) + completion
        current["trained_tokens"] = (
            current.get("trained_tokens", 0) + int(out["prompt_mask"].sum()) + completion
        )
        return out

    trainer._generate_and_score_completions = timed_score

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            turns.wait()
            current.clear()
            current.update(t0=time.perf_counter(), n_gen=len(gen_times), n_seen=len(seen))

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            wall = time.perf_counter() - current["t0"]
            turns.finished()
            i = len(steps)
            if sorted(set(seen[current["n_seen"] :])) != sorted(set(spec["schedule"][i])):
                raise RuntimeError(f"step {i}: TRL prompts differ from the schedule {spec['schedule'][i]}")
            steps.append(
                {
                    "step_s": wall,
                    "gen_s": current["gen_s"],
                    "generate_s": sum(gen_times[current["n_gen"] :]),
                    "generate_calls": len(gen_times) - current["n_gen"],
                    "generated_tokens": current["generated_tokens"],
                    "trained_tokens": current["trained_tokens"],
                    "micro_batches": args.gradient_accumulation_steps,
                }
            )
            print(f"[trl] step {i}: {wall:.2f}s", file=sys.stderr, flush=True)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "reward" in logs and steps:
                steps[-1]["reward"] = logs["reward"]

    trainer.add_callback(StepTimer())
    rss_before = _status_kib("VmRSS")
    reset_peak_rss()
    cuda_peak_reset(spec)
    trainer.train()
    return {"steps": steps, **memory_report(rss_before), **cuda_report(spec)}


# -- driver ----------------------------------------------------------------------------------------
def prepare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Save the model both workers load, and draw the per-step prompts with palaestra's task sampler."""
    from transformers import AutoTokenizer

    import palaestra
    from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer, load_model_and_tokenizer
    from palaestra.trainers.core.sampler import TaskSampler, WeightedEnv

    if args.model in shapes.SHAPES:
        model_dir = shapes.build(args.model, workdir / "model", device=args.device, seed=args.seed)
        tok = AutoTokenizer.from_pretrained(model_dir)
        model = None
    elif args.model == "tiny":
        tok = build_tiny_tokenizer()
        model = build_tiny_model(
            tok,
            seed=args.seed,
            hidden_size=256,
            num_layers=4,
            num_heads=4,
            num_kv_heads=2,
            intermediate_size=688,
        )
    else:
        model, tok = load_model_and_tokenizer(args.model)
    if model is not None:
        model_dir = workdir / "model"
        model.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        params_m = sum(p.numel() for p in model.parameters()) / 1e6
    else:
        params_m = _params_m(model_dir)

    register_env()
    total = args.warmup + args.steps
    tasks = TaskSampler([WeightedEnv(ENV_ID)], seed=args.seed).sample(args.prompts_per_step * total)
    prompts = [palaestra.make(t.env_id).reset(seed=t.seed)[0] for t in tasks]
    schedule = [prompts[i : i + args.prompts_per_step] for i in range(0, len(prompts), args.prompts_per_step)]
    rendered = [
        tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=True)
        for t in set(prompts)
    ]
    longest = max(len(r["input_ids"] if isinstance(r, Mapping) else r) for r in rendered)
    micro = args.micro_batch or args.prompts_per_step * args.group_size
    return {
        **vars(args),
        "workdir": str(workdir),
        "model_dir": str(model_dir),
        "params_m": params_m,
        "schedule": schedule,
        "micro_batch": micro,
        # ours buckets by tokens: a budget that fits `micro` of the longest possible rows
        "micro_batch_tokens": micro * (longest + args.max_new_tokens),
        "ours_overrides": args.ours_override
        + (["model.gradient_checkpointing=true"] if args.gradient_checkpointing else []),
    }


def _params_m(model_dir: Path) -> float:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters()) / 1e6


def _worker_cmd(name: str, spec_path: Path, workdir: Path) -> list[str]:
    out = workdir / f"{name}.json"
    return [sys.executable, __file__, "--worker", name, "--spec", str(spec_path), "--result", str(out)]


def _fail(name: str, code: int | None, log: Path, verbose: bool) -> SystemExit:
    tail = "" if verbose else "\n".join(log.read_text().splitlines()[-40:])
    return SystemExit(f"{name} worker failed (exit {code}):\n{tail}")


def run_worker(name: str, spec_path: Path, workdir: Path, verbose: bool) -> dict[str, Any]:
    log = workdir / f"{name}.log"
    print(f"running {name} in a subprocess (log: {log}) ...", flush=True)
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(
            _worker_cmd(name, spec_path, workdir),
            stdout=None if verbose else f,
            stderr=subprocess.STDOUT if not verbose else None,
        )
    if proc.returncode != 0:
        raise _fail(name, proc.returncode, log, verbose)
    print(f"  {name} done in {time.perf_counter() - t0:.0f}s", flush=True)
    return json.loads((workdir / f"{name}.json").read_text())


def _open_for_writing(fifo: Path, proc: subprocess.Popen, log: Path, verbose: bool):
    """Open a named pipe's writing end once the worker opened its reading end; fail if it died first.

    A plain blocking `open` would wait forever for a worker that crashed while setting up.
    """
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            if proc.poll() is not None:
                raise _fail(fifo.stem, proc.returncode, log, verbose) from None
            time.sleep(0.05)
            continue
        os.set_blocking(fd, True)
        return os.fdopen(fd, "w")


def run_in_turns(names: list[str], spec: dict[str, Any], spec_path: Path, workdir: Path, verbose: bool):
    """Start every worker, then let them run one RL step at a time in ABBA order."""
    procs, logs, pipes = {}, {}, {}
    for name in names:
        for end in ("go", "done"):
            os.mkfifo(workdir / f"{name}.{end}")
        logs[name] = (workdir / f"{name}.log").open("w")
        procs[name] = subprocess.Popen(
            _worker_cmd(name, spec_path, workdir),
            stdout=None if verbose else logs[name],
            stderr=subprocess.STDOUT if not verbose else None,
        )
    print(f"running {' and '.join(names)} in turns (logs in {workdir}) ...", flush=True)
    for name in names:  # same open order as the worker: go, then done
        go = _open_for_writing(workdir / f"{name}.go", procs[name], workdir / f"{name}.log", verbose)
        pipes[name] = (go, (workdir / f"{name}.done").open("r"))
    t0 = time.perf_counter()
    for step in range(spec["warmup"] + spec["steps"]):
        for name in names if step % 2 == 0 else names[::-1]:
            go, done = pipes[name]
            go.write("go\n")
            go.flush()
            if not done.readline():
                procs[name].wait()
                raise _fail(name, procs[name].returncode, workdir / f"{name}.log", verbose)
    results = {}
    for name in names:
        for pipe in pipes[name]:
            pipe.close()
        if procs[name].wait() != 0:
            raise _fail(name, procs[name].returncode, workdir / f"{name}.log", verbose)
        logs[name].close()
        results[name] = json.loads((workdir / f"{name}.json").read_text())
    print(f"  done in {time.perf_counter() - t0:.0f}s", flush=True)
    return results


def summarise(result: dict[str, Any], warmup: int) -> dict[str, float]:
    steps = result["steps"][warmup:]

    def med(key: str) -> float:
        return statistics.median(s[key] for s in steps)

    step_s, gen_s = med("step_s"), med("gen_s")
    update_s = statistics.median(s["step_s"] - s["gen_s"] for s in steps)
    return {
        "steps/s": 1 / step_s,
        "step s": step_s,
        "  generation s": gen_s,
        "    sampling call s": med("generate_s"),
        "  update s": update_s,
        "generated tokens/step": med("generated_tokens"),
        "trained tokens/step": med("trained_tokens"),
        "generated tokens/s": statistics.median(s["generated_tokens"] / s["gen_s"] for s in steps),
        "trained tokens/s": statistics.median(
            s["trained_tokens"] / (s["step_s"] - s["gen_s"]) for s in steps
        ),
        "generate calls/step": med("generate_calls"),
        "micro-batches/step": med("micro_batches"),
        "peak RSS, process MiB": result["peak_rss_process_mib"],
        "peak RSS, training MiB": result["peak_rss_train_mib"],
        "RSS before training MiB": result["rss_before_mib"],
        "reward mean": statistics.fmean(s.get("reward", float("nan")) for s in steps),
        **(
            {
                "peak GPU allocated MiB": result["peak_gpu_alloc_mib"],
                "peak GPU reserved MiB": result["peak_gpu_reserved_mib"],
            }
            if "peak_gpu_alloc_mib" in result
            else {}
        ),
    }


BETTER = {
    "steps/s": "higher",
    "step s": "lower",
    "  generation s": "lower",
    "    sampling call s": "lower",
    "  update s": "lower",
    "generated tokens/s": "higher",
    "trained tokens/s": "higher",
    "peak RSS, process MiB": "lower",
    "peak RSS, training MiB": "lower",
    "RSS before training MiB": "lower",
    "peak GPU allocated MiB": "lower",
    "peak GPU reserved MiB": "lower",
}


def table(ours: dict[str, float], trl: dict[str, float]) -> str:
    lines = [
        f"| {'metric':<28} | {'palaestra':>10} | {'TRL':>10} | {'ours/TRL':>8} | better |",
        "|" + "---|" * 5,
    ]
    for key in ours:
        a, b = ours[key], trl[key]
        better = BETTER.get(key, "")
        ratio = f"{a / b:.2f}" if b else "-"
        fmt = (lambda v: f"{v:,.0f}") if abs(b) >= 100 else (lambda v: f"{v:.3f}")
        lines.append(f"| {key:<28} | {fmt(a):>10} | {fmt(b):>10} | {ratio:>8} | {better:<6} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model",
        default="tiny",
        help="tiny (Llama, hidden 256, 4 layers) | qwen2.5-0.5b | qwen2.5-1.5b (real shapes, random weights: "
        "benchmarks/shapes.py) | smollm2-135m | HF path",
    )
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both trainers run")
    ap.add_argument(
        "--precision", choices=["fp32", "bf16"], help="both trainers (default: bf16 on cuda, fp32 on cpu)"
    )
    ap.add_argument("--steps", type=int, default=6, help="measured RL steps per trainer")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured RL steps first")
    ap.add_argument("--prompts-per-step", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument(
        "--micro-batch", type=int, default=0, help="rows per forward/backward (0: the whole step)"
    )
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gradient-checkpointing", action="store_true", help="in both trainers")
    ap.add_argument("--ours-override", action="append", default=[], help="extra palaestra key=value")
    ap.add_argument("--order", default="ours,trl", help="which trainer runs first")
    ap.add_argument(
        "--sequential", action="store_true", help="run the trainers one after the other, not in turns"
    )
    ap.add_argument("--json", type=Path, help="also write the raw per-step results here")
    ap.add_argument("--verbose", action="store_true", help="stream the workers' output")
    ap.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.precision is None:
        args.precision = "bf16" if args.device == "cuda" else "fp32"
    if args.worker:
        spec = json.loads(args.spec.read_text())
        result = (run_ours if args.worker == "ours" else run_trl)(spec)
        args.result.write_text(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="grpo_vs_trl_") as tmp:
        workdir = Path(tmp)
        spec = prepare(args, workdir)
        spec.pop("json")
        spec_path = workdir / "spec.json"
        spec_path.write_text(json.dumps(spec, default=str))
        names = args.order.split(",")
        if args.sequential:
            results = {name: run_worker(name, spec_path, workdir, args.verbose) for name in names}
        else:
            results = run_in_turns(names, spec, spec_path, workdir, args.verbose)

    import torch
    import transformers
    import trl

    ours, theirs = summarise(results["ours"], args.warmup), summarise(results["trl"], args.warmup)
    print(
        f"\nmodel {args.model} ({spec['params_m']:.1f}M params), {args.prompts_per_step} prompts x "
        f"{args.group_size} samples, {args.max_new_tokens} new tokens, micro-batch {spec['micro_batch']} rows, "
        f"lr {args.lr}, {args.device} {args.precision}; median of {args.steps} steps after {args.warmup} warm-up, "
        f"{'one trainer after the other' if args.sequential else 'taking turns step by step'}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, trl {trl.__version__}\n"
    )
    if args.device == "cuda":
        print(f"GPU: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}\n")
    print(table(ours, theirs))
    for name, res in results.items():
        print(f"{name} step s: " + " ".join(f"{s['step_s']:.2f}" for s in res["steps"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"spec": spec, "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
