"""Train a model with TRL's GRPOTrainer on a palaestra env (docs/trl.md).

    python examples/trl_grpo.py                                   # SmolLM2-135M on Math-ArithRetry-v0, CPU
    python examples/trl_grpo.py --env palaestra/Game-Wordle-v0 --steps 50 --model HuggingFaceTB/SmolLM2-360M-Instruct
    python examples/trl_grpo.py --model tiny-random --steps 1     # a smoke run in seconds

Each task is an env id and a reset seed; TRL plays `--num-generations` episodes of each task with the
model it trains, and the env's episode return is the only reward. Needs `pip install palaestra[trl]`.
"""

from __future__ import annotations

import argparse

import torch
from trl import GRPOConfig, GRPOTrainer

from palaestra.agents.models import load_model_and_tokenizer
from palaestra.integrations.trl import TRLRollout, env_reward, task_dataset
from palaestra.rollout import Task


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="palaestra/Math-ArithRetry-v0", help="a registered env id")
    parser.add_argument("--tasks", type=int, default=64, help="tasks (reset seeds 0..N-1)")
    parser.add_argument(
        "--model", default="smollm2-135m", help="palaestra's model names, a folder or a hub id"
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--num-generations", type=int, default=4, help="episodes per task (the group)")
    parser.add_argument("--tasks-per-step", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="reply budget per turn")
    parser.add_argument("--output-dir", default="runs/trl-grpo")
    args = parser.parse_args()

    model, tokenizer = load_model_and_tokenizer(args.model)
    tasks = [Task(args.env, seed) for seed in range(args.tasks)]
    cuda = torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=args.output_dir,
        use_cpu=not cuda,
        bf16=cuda,
        per_device_train_batch_size=args.tasks_per_step * args.num_generations,
        num_generations=args.num_generations,
        max_completion_length=args.max_new_tokens,
        learning_rate=1e-6,
        max_steps=args.steps,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=model,
        args=config,
        processing_class=tokenizer,
        train_dataset=task_dataset(tasks),
        rollout_func=TRLRollout(),
        reward_funcs=env_reward,
    )
    trainer.train()
    trainer.save_model(f"{args.output_dir}/final")


if __name__ == "__main__":
    main()
