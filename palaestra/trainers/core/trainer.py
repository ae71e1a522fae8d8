"""The RL loop every algorithm shares: rollout -> filter -> advantages -> update -> weight sync -> log.

`Trainer` owns the model, optimizer, rollout policy, task sampler, checkpoints and metrics. An algorithm
subclasses it and overrides only the hooks it changes:

    collect(tasks)            sampling strategy: which trajectories one step trains on, and metrics
    advantages(trajectories)  `Advantages`: one scalar (or one value per token) per trajectory, and metrics
    trainable(trajectories)   which trajectories enter the loss
    off_policy(trajectories)  which trajectories' replies answer another context (a per-row batch field)
    loss(...)                 the policy loss on a micro-batch, and the learner's other hooks (`learner.py`)

The update itself (forward passes, loss, optimizer steps) is the `Learner` this class extends
(`core/learner.py`); the model's set-up (LoRA, reference model, precision) is `core/model_setup.py`.

With `rollout.pipeline=async` the rollouts never wait for the learner: a producer thread keeps groups
of episodes in flight and `roll_out` takes complete groups from it (`core/pipeline.py`), dropping those
more than `rollout.max_staleness` policy versions old; after each update the producer's weights are
refreshed without stopping its episodes. K = 0 is the synchronous schedule.

Launched by torchrun with N processes, the same loop runs data-parallel (DDP or FSDP2, see
`core/distributed.py`): each rank rolls out its shard of the tasks, the trajectories are all-gathered,
and each rank trains on its share of the micro-batches; one optimizer step equals the single-process
step on the same batch. Rank 0 writes metrics, evaluates and finishes checkpoints.

A run never loses work: its envs are built once before it starts (`core/preflight.py`; `palaestra
train` does it before loading the model), it starts only in a folder holding no other run, it stops
with `RunStopped` (after saving a checkpoint) when a step's episodes fail with env errors or steps keep
having nothing to train on, and it saves its last checkpoint and `final/` before the final evaluation,
which may then fail without taking them along.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml

from palaestra.agents.base import SamplingParams
from palaestra.agents.transformers_api import progress_bars_off
from palaestra.evaluation.evaluate import EvalResult
from palaestra.io import atomic_write_text
from palaestra.rollout.runner import RolloutConfig, Task
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.batching import Advantages, Normalizers, StepBatch
from palaestra.trainers.core.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from palaestra.trainers.core.distributed import (
    all_gather_objects,
    broadcast_object,
    full_model_state,
    init_distributed,
    shard_range,
    wrap_model,
)
from palaestra.trainers.core.forward import model_allows_shared_prefix
from palaestra.trainers.core.held_out import evaluate_held_out, save_held_out
from palaestra.trainers.core.learner import Learner
from palaestra.trainers.core.model_setup import check_precision, merged_model, prepare_model, reference_model
from palaestra.trainers.core.optim import build_optimizer, build_scheduler
from palaestra.trainers.core.pipeline import AsyncPipeline, staleness_metrics
from palaestra.trainers.core.preflight import RunStart, check_envs, prepare_run_dir
from palaestra.trainers.core.rollout_source import make_rollout_source
from palaestra.trainers.core.sampler import WeightedEnv, make_task_sampler
from palaestra.trainers.core.self_play import self_play
from palaestra.trainers.core.tracking import MetricsWriter, merge_rank_metrics, rollout_metrics

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from palaestra.config import TrainConfig

__all__ = ["Advantages", "Normalizers", "RunStopped", "StepBatch", "Trainer"]

logger = logging.getLogger(__name__)


class RunStopped(RuntimeError):
    """The run stopped early; the message says why and where its work was saved."""


def _one_line(exc: BaseException) -> str:
    """`Type: message` of an exception, first line only."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class Trainer(Learner):
    """Shared RL loop (see module docstring).

    Args:
        config: the whole run's configuration.
        model: a model to train instead of loading `config.model.name` (tests pass tiny models).
        tokenizer: its tokenizer (required with `model`).
    """

    writer: MetricsWriter  # the run's metrics log: `train()` opens it, in the folder it prepared

    def __init__(
        self,
        config: TrainConfig,
        *,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ):
        from palaestra.agents.models import load_model_and_tokenizer

        self.config = config
        self.run_dir: Path = config.run.run_dir
        self.dist, self.device = init_distributed(config.distributed, config.model.device)
        if self.dist.enabled and config.rollout.pipeline == "async":
            raise ValueError(
                "rollout.pipeline=async with several trainer processes (torchrun) is not supported: "
                "train in one process or set rollout.pipeline=sync"
            )
        check_precision(config.model, self.device)
        torch.manual_seed(config.run.seed)
        if model is None:
            model, tokenizer = load_model_and_tokenizer(
                config.model.name, dtype=config.model.dtype, device=config.model.device
            )
        elif tokenizer is None:
            raise ValueError("pass the tokenizer together with the model")
        self.tokenizer = tokenizer
        # module: the model itself; model: what the training pass calls (DDP wrapper or FSDP2-sharded
        # module; the module itself in one process); rollout_model: what generates (an unsharded copy
        # under FSDP2, refreshed after each update; the module otherwise)
        self.module = prepare_model(model, config.model, self.dist, self.device)
        # a frozen copy of the initial policy when the loss has a KL term (LoRA: the base model)
        self.ref_model = (
            reference_model(self.module, config.model, self.dist, self.device)
            if self.needs_reference
            else None
        )
        self.rollout_model = self.module
        if self.dist.enabled and self.dist.strategy == "fsdp":
            if config.model.lora is not None:
                raise ValueError(
                    "model.lora with distributed.strategy=fsdp is not supported: LoRA adapters are small, "
                    "set distributed.strategy=ddp"
                )
            self.rollout_model = copy.deepcopy(self.module).eval().requires_grad_(False)
        self.model = wrap_model(self.module, self.dist, self.device)
        # one process only: DDP and FSDP2 expect one forward per backward
        self.share_prefix = (
            config.optimizer.share_prefix
            and not self.dist.enabled
            and model_allows_shared_prefix(self.module)
        )
        # where rollouts run (this process, or Ray workers) and how they get the trained weights
        self.rollouts = make_rollout_source(
            config, self.rollout_model, tokenizer, self.export, distributed=self.dist.enabled
        )
        self.policy = self.rollouts.policy
        self.sampler = make_task_sampler(
            [
                WeightedEnv(e.id, e.weight, e.kwargs, e.server, e.reward.model_dump() if e.reward else None)
                for e in config.envs.train
            ],
            seed=config.run.seed,
            task_pool=config.rollout.task_pool,
        )
        opt = config.optimizer
        self.optimizer = build_optimizer(
            self.model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay, betas=opt.betas, eps=opt.eps
        )
        self.scheduler = build_scheduler(
            self.optimizer,
            schedule=opt.schedule,
            warmup_steps=opt.warmup_steps,
            total_steps=config.run.steps * self.optimizer_steps_per_rl_step,
            min_lr_ratio=opt.min_lr_ratio,
        )
        self.step = 0
        # rollout.pipeline=async: the producer of groups, started by the first roll_out
        self.pipeline: AsyncPipeline | None = None
        # (step, folder) of the newest checkpoint this run wrote or resumed from
        self._saved: tuple[int, Path] | None = None

    # -- hooks -------------------------------------------------------------------------------------
    def rollout_config(self, step: int) -> RolloutConfig:
        r = self.config.rollout
        seed = int(np.random.SeedSequence([self.config.run.seed, step]).generate_state(1)[0])
        return RolloutConfig(
            group_size=r.group_size,
            max_turns=r.max_turns,
            max_context_tokens=r.max_context_tokens,
            step_timeout_s=r.step_timeout_s,
            env_executor="thread" if r.step_timeout_s else "auto",
            max_concurrency=max(1, r.tasks_per_step * r.group_size),
            sampling=SamplingParams(
                max_new_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p, seed=seed
            ),
        )

    async def roll_out(
        self, tasks: Sequence[Task], config: RolloutConfig
    ) -> tuple[list[Trajectory], dict[str, float]]:
        """Roll out `tasks`; in a distributed run each rank its shard, then every rank gets them all.

        The gathered list is in task order with group indices as one process would number them, so
        what follows (advantages, filters, metrics) is the same on every rank and at any world size.

        With `rollout.pipeline=async`, `len(tasks)` complete groups from the producer instead, which
        samples its own tasks as this step would (the same ones when `rollout.max_staleness` is 0).

        Returns:
            The trajectories and the rollout's own metrics (self-play: draw and first-seat win rates).
        """
        if self.config.rollout.pipeline == "async":
            pipeline = self._pipeline()
            return await asyncio.to_thread(pipeline.take, len(tasks), self.step), {}
        if not self.dist.enabled:
            return await self._roll_out_here(tasks, config)
        lo, hi = shard_range(len(tasks), self.dist)
        shards = all_gather_objects(await self._roll_out_here(tasks[lo:hi], config), self.dist)
        merged: list[Trajectory] = []
        offset = 0
        for shard, _ in shards:
            groups = 1 + max((t.group_index for t in shard), default=-1)
            for t in shard:
                t.group_index += offset
            merged += shard
            offset += groups
        return merged, merge_rank_metrics([m for _, m in shards])

    async def _roll_out_here(
        self, tasks: Sequence[Task], config: RolloutConfig
    ) -> tuple[list[Trajectory], dict[str, float]]:
        if self.config.rollout.self_play:
            return await self_play(self.policy, tasks, config)
        return await self.rollouts.run(tasks, config), {}

    async def collect(self, tasks: list[Task]) -> tuple[list[Trajectory], dict[str, float]]:
        """Sampling strategy: roll out `group_size` samples of each task. Algorithms override this."""
        return await self.roll_out(tasks, self.rollout_config(self.step))

    def advantages(self, trajectories: list[Trajectory]) -> Advantages:
        """One advantage (or one per token) per trajectory, and the metrics of computing them."""
        raise NotImplementedError(f"{type(self).__name__} must implement advantages()")

    def trainable(self, trajectories: list[Trajectory]) -> list[bool]:
        """Which trajectories enter the loss (all by default; e.g. DAPO overlong filtering drops some)."""
        return [True] * len(trajectories)

    def off_policy(self, trajectories: list[Trajectory]) -> list[bool]:
        """Per trajectory, `Row.off_policy` (none by default; Critique-GRPO's refinements are)."""
        return [False] * len(trajectories)

    def step_batch(self, trajectories: list[Trajectory]) -> tuple[StepBatch, dict[str, float]]:
        """What the update trains on: the trajectories with the hooks' per-row values; and metrics."""
        adv = self.advantages(trajectories)
        batch = StepBatch(
            trajectories, adv.values, self.trainable(trajectories), self.off_policy(trajectories)
        )
        return batch, adv.metrics

    def _gather_rollout_weights(self) -> None:
        """FSDP2: gather the shards into the unsharded rollout copy (every rank calls it); else nothing."""
        if self.rollout_model is not self.module:
            self.rollout_model.load_state_dict(full_model_state(self.model))

    def sync_rollout_weights(self, version: int | None = None) -> None:
        """Make the next rollouts use the trained weights (every rank calls it; see `rollout_source`).

        Args:
            version: the policy version of the weights (default: this step's update done, step + 1).
        """
        self._gather_rollout_weights()
        self.rollouts.sync_weights(self.rollout_model, version=self.step + 1 if version is None else version)
        if self.pipeline is not None:
            self.pipeline.weights_sent()

    def _pipeline(self) -> AsyncPipeline:
        """The async pipeline's producer, started from the current step (and its weights) when first asked."""
        if self.pipeline is None:
            self.pipeline = AsyncPipeline(
                self.rollouts, self.sampler, self.rollout_config, self.config.rollout, first_step=self.step
            )
        return self.pipeline

    def stop_pipeline(self) -> None:
        """Stop the async producer (episodes in flight are dropped); the next roll_out starts a new one."""
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    def close(self) -> None:
        """Stop the producer and the rollout backend's engines or Ray workers (the process exiting does it too)."""
        self.stop_pipeline()
        self.rollouts.close()

    def train_step(self) -> dict[str, float]:
        """One RL step: collect, compute advantages, update, sync weights. Returns its metrics."""
        r = self.config.rollout
        t0 = time.perf_counter()
        if r.pipeline == "async":
            self._pipeline()  # its producer plans from the sampler as it is before this step's tasks
        tasks = self.sampler.sample(r.tasks_per_step)
        trajectories, collect_metrics = asyncio.run(self.collect(tasks))
        self._check_env_errors([t.error for t in trajectories])
        t1 = time.perf_counter()
        self.rollouts.release_memory()  # vllm sleep mode: free the engine's GPU memory for the update
        batch, adv_metrics = self.step_batch(trajectories)
        metrics = {**rollout_metrics(trajectories), **collect_metrics, **adv_metrics, **self.update(batch)}
        self.sync_rollout_weights()
        t2 = time.perf_counter()
        if self.pipeline is not None:
            metrics.update(staleness_metrics(trajectories, self.step, r.max_staleness))
            metrics.update(self.pipeline.step_metrics())
            metrics["async/idle_fraction"] = metrics["async/wait_s"] / max(t2 - t0, 1e-9)
        generated = sum(t.num_generated_tokens for t in trajectories)
        trained = sum(len(t.token_ids) for t in trajectories)
        metrics.update(
            {
                "time/rollout_s": t1 - t0,
                "time/update_s": t2 - t1,
                "time/step_s": t2 - t0,
                "throughput/rollout_tokens_per_s": generated / max(t1 - t0, 1e-9),
                "throughput/train_tokens_per_s": trained / max(t2 - t1, 1e-9),
            }
        )
        return metrics

    def _check_env_errors(self, errors: Sequence[str | None]) -> None:
        """`RunStopped` when at least `rollout.max_env_error_fraction` of the episodes' `errors` are set."""
        failed = [e for e in errors if e is not None]
        limit = self.config.rollout.max_env_error_fraction
        if failed and len(failed) / len(errors) >= limit:
            first = failed[0].partition("\n")[0]
            raise RunStopped(
                f"step {self.step + 1}: {len(failed)} of {len(errors)} episodes failed with an env "
                f"error (rollout.max_env_error_fraction={limit:g}); first: {first}"
            )

    rollout_metrics = staticmethod(rollout_metrics)

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self) -> tuple[dict[str, float], list[EvalResult]]:
        """Evaluate on the held-out envs; returns metrics `eval/<env>/<name>` and the results.

        In a distributed run rank 0 evaluates while the others wait (up to
        `distributed.timeout_minutes`); every rank returns the metrics, only rank 0 the results.
        """
        if not self.dist.enabled:
            return self._evaluate_here()
        metrics, results = self._evaluate_here() if self.dist.is_main else ({}, [])
        return broadcast_object(metrics, self.dist), results

    def _evaluate_here(self) -> tuple[dict[str, float], list[EvalResult]]:
        was_training = self.rollout_model.training
        self.rollout_model.eval()
        try:
            return evaluate_held_out(self.policy, self.config)
        finally:
            self.rollout_model.train(was_training)

    # -- run ---------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def _load_state(self, state: dict[str, Any]) -> None:
        """Restore what `_state` saved (algorithms with own state, e.g. a replay buffer, extend both)."""
        self.sampler.load_state_dict(state["sampler"])

    def save(self) -> Path:
        """Checkpoint the current step into RUN/checkpoints (every rank calls it)."""
        path = save_checkpoint(
            self.run_dir / "checkpoints",
            self.step,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state=self._state(),
            keep=self.config.checkpoint.keep,
        )
        self._saved = (self.step, path)
        return path

    def _checkpoint_now(self) -> Path:
        """The checkpoint of the current step: the one already written or resumed, else a new one."""
        if self._saved is not None and self._saved[0] == self.step:
            return self._saved[1]
        return self.save()

    def resume(self, path: Path | None = None) -> bool:
        """Load checkpoint `path` (default: the run's newest, if any); returns whether one was loaded."""
        path = path or latest_checkpoint(self.run_dir / "checkpoints")
        if path is None:
            return False
        ckpt = load_checkpoint(path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        self._load_state(ckpt.state)
        self.step = ckpt.step
        self._saved = (ckpt.step, path)
        self.stop_pipeline()  # a producer restarts from the checkpoint's weights and step
        self.sync_rollout_weights(self.step)  # vllm: the engine started from the initial weights
        logger.info("resumed from %s (step %d)", path, self.step)
        return True

    def _write_config(self) -> None:
        if not self.dist.is_main:
            return
        data = self.config.model_dump(mode="json")
        atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))

    def train(
        self, *, resume: bool = False, overwrite: bool = False, start: RunStart | None = None
    ) -> dict[str, Any]:
        """Run the configured number of steps in the run folder, then save, export and evaluate.

        The last checkpoint and RUN/final are written before the final evaluation.

        Args:
            resume: continue from the run folder's newest checkpoint (a missing or empty folder starts
                from step 0; a run without a complete checkpoint is an error).
            overwrite: move a previous run in the folder aside to `NAME.old-<time>` and start over.
            start: the run folder as `prepare_run_dir` left it, from a caller that checked the envs and
                the folder before loading the model (`palaestra train`); then neither is done again.

        Returns:
            {"before": eval metrics or None, "after": eval metrics, "history": per-step metrics}.

        Raises:
            RunSetupError: an env of `envs` cannot be built, or the folder holds another run (and neither
                flag is set), has nothing to resume, or cannot be written (see `core/preflight.py`).
            RunStopped: env errors or steps without an update stopped the run, or an evaluation failed;
                the work so far is saved (the message says where).
        """
        cfg = self.config
        if start is None:
            check_envs(cfg)
            start = prepare_run_dir(self.run_dir, resume=resume, overwrite=overwrite, main=self.dist.is_main)
        self.dist.barrier()  # rank 0 has moved a previous run aside before any rank writes
        self._write_config()
        resumed = start.resume_from is not None and self.resume(start.resume_from)
        self.writer = MetricsWriter(
            self.run_dir,
            tensorboard=cfg.logging.tensorboard,
            wandb=cfg.logging.wandb,
            wandb_project=cfg.logging.wandb_project,
            config=cfg.model_dump(mode="json"),
            enabled=self.dist.is_main,
        )
        self.writer.truncate_after(self.step)  # also drops a line cut short by a kill
        before = after = None
        history: list[dict[str, float]] = []
        try:
            if cfg.envs.eval and cfg.eval.before_training and not resumed:
                before, results = self.evaluate()
                self._save_eval(results, "before")
                self.writer.log(0, before)
            try:
                self._run_steps(history)
            finally:
                self.stop_pipeline()
            checkpoint = self._checkpoint_now()
            self.export(self.run_dir / "final")
            if cfg.envs.eval:
                after = self._final_evaluation(checkpoint)
        finally:
            self.writer.close()
        if cfg.logging.report and self.dist.is_main:
            from palaestra.reports import write_report

            write_report(self.run_dir)
        return {"before": before, "after": after, "history": history}

    def _run_steps(self, history: list[dict[str, float]]) -> None:
        """Train until `run.steps`; when the run stops early, checkpoint the last finished step first."""
        from palaestra.trainers.core.progress import training_progress

        cfg = self.config
        skipped = 0  # consecutive steps without an update
        try:
            progress = cfg.logging.progress and self.dist.is_main
            with training_progress(cfg.run.steps, start=self.step, enabled=progress) as advance:
                while self.step < cfg.run.steps:
                    metrics = self.train_step()  # RunStopped when too many episodes failed
                    self.step += 1
                    if cfg.envs.eval and cfg.eval.every and self.step % cfg.eval.every == 0:
                        metrics.update(self._evaluate_during_training(metrics))
                    self.writer.log(self.step, metrics)
                    history.append(metrics)
                    if cfg.checkpoint.every and self.step % cfg.checkpoint.every == 0:
                        self.save()
                    skipped = skipped + 1 if metrics.get("update/skipped") else 0
                    if cfg.run.max_skipped_steps is not None and skipped >= cfg.run.max_skipped_steps:
                        raise RunStopped(
                            f"{skipped} steps in a row (up to step {self.step}) had no trainable trajectory, "
                            f"so no update (run.max_skipped_steps={cfg.run.max_skipped_steps}); check the "
                            "rewards, the algorithm's filters and rollout.max_new_tokens"
                        )
                    advance(metrics)
        except RunStopped as exc:
            path = self._checkpoint_now()
            raise RunStopped(
                f"{exc}; the run so far (step {self.step}) is saved in {path}: fix the cause, then "
                "continue with --resume"
            ) from exc

    def _evaluate_during_training(self, metrics: dict[str, float]) -> dict[str, float]:
        """Held-out metrics every `eval.every` steps; a failure logs the step's metrics and stops the run."""
        try:
            return self.evaluate()[0]
        except Exception as exc:
            self.writer.log(self.step, metrics)
            raise RunStopped(f"the evaluation at step {self.step} failed: {_one_line(exc)}") from exc

    def _final_evaluation(self, checkpoint: Path) -> dict[str, float]:
        """Evaluate the trained model; a failure says where the (already saved) model is."""
        try:
            after, results = self.evaluate()
        except Exception as exc:
            final = self.run_dir / "final"
            raise RunStopped(
                f"the final evaluation failed: {_one_line(exc)}; the trained model is saved in {final} "
                f"(checkpoint {checkpoint}); evaluate it with: palaestra eval --agent hf:{final} --env ..."
            ) from exc
        self._save_eval(results, "after")
        self.writer.log(self.step, {f"final/{k}": v for k, v in after.items()})
        return after

    def _save_eval(self, results: Sequence[EvalResult], stage: str) -> None:
        if self.dist.is_main:  # only rank 0 evaluates
            save_held_out(results, self.config, self.run_dir / "eval" / stage)

    def export(self, path: Path) -> Path:
        """Save the trained policy as a plain HF model folder (LoRA merged) usable as `hf:PATH`.

        Consolidated from every rank's shards; every rank calls it, rank 0 writes (atomically:
        under a temporary name, renamed when complete).
        """
        self._gather_rollout_weights()
        if self.dist.is_main:
            model = merged_model(self.rollout_model, lora=self.config.model.lora is not None)
            tmp = path.with_name(f".tmp-{path.name}")
            shutil.rmtree(tmp, ignore_errors=True)
            with progress_bars_off():  # the run's own progress says what happens
                model.save_pretrained(tmp)
                self.tokenizer.save_pretrained(tmp)
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
        self.dist.barrier()
        return path
