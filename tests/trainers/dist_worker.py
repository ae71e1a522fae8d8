"""Training jobs for the distributed tests: run under torchrun (N processes) or imported (1 process).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/trainers/dist_worker.py JOBS.json

JOBS.json lists {"run_dir", "strategy", "steps", "resume", "lora"} objects, trained one after another in the
same process group. The same config and env serve the single-process reference, so a difference in
the results can only come from the distribution.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import palaestra

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, under torchrun too
from tests.vowel_env import VowelEnv

ENV_ID = "test/DistVowel-v0"


def config(run_dir: str | Path, *, strategy: str = "ddp", steps: int = 4, lora: bool = False):
    """A run that exercises every distributed path: KL reference, two mini-batches, uneven micro-batches."""
    from palaestra.config import load_config

    run_dir = Path(run_dir)
    palaestra.register_env(ENV_ID, VowelEnv, override=True)
    return load_config(
        None,
        run={"name": run_dir.name, "output_dir": str(run_dir.parent), "steps": steps, "seed": 0},
        # one request per generate call: samples depend on their own seed only, not on which other
        # requests share a batch, so a rank's shard samples exactly what one process would
        agent={"max_batch_size": 1},
        envs={"train": [{"id": ENV_ID}], "eval": [{"id": ENV_ID, "episodes": 2}]},
        rollout={"tasks_per_step": 3, "group_size": 4, "max_new_tokens": 8},
        algorithm={"kl_coef": 0.05, "mini_batches": 2},
        # share_prefix is off under DDP/FSDP; off here too, so every layout runs the same passes
        optimizer={"lr": 5e-3, "micro_batch_tokens": 200, "share_prefix": False},
        eval={"before_training": False},
        logging={"tensorboard": False, "progress": False},
        checkpoint={"every": 2, "keep": 2},
        distributed={"strategy": strategy},
        model={"lora": {"r": 4, "alpha": 8.0}} if lora else {},
    )


def train(
    run_dir: str | Path, *, strategy: str = "ddp", steps: int = 4, resume: bool = False, lora: bool = False
) -> dict:
    """Train the tiny random model (the same initial weights on every rank) with `config(...)`."""
    trainer = make(run_dir, strategy=strategy, steps=steps, lora=lora)
    return trainer.train(resume=resume)


def make(run_dir: str | Path, *, strategy: str = "ddp", steps: int = 4, lora: bool = False):
    """The trainer of `config(...)` over the tiny random model in float64.

    Float64 makes the runs comparable on any CPU: a sum reordered by the data-parallel layout differs
    by ~1e-16 of its terms' magnitude, far below Adam's eps (1e-8), so Adam cannot blow the difference up
    into whole steps as it can with float32's ~1e-7 (see `tests/trainers/test_distributed.py`).
    """
    from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer
    from palaestra.trainers import make_trainer

    tok = build_tiny_tokenizer()
    cfg = config(run_dir, strategy=strategy, steps=steps, lora=lora)
    return make_trainer(cfg, model=build_tiny_model(tok, seed=0).double(), tokenizer=tok)


def main(jobs_file: str) -> None:
    import torch.distributed as dist

    for job in json.loads(Path(jobs_file).read_text()):
        train(
            job["run_dir"],
            strategy=job["strategy"],
            steps=job["steps"],
            resume=job["resume"],
            lora=job.get("lora", False),
        )
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
