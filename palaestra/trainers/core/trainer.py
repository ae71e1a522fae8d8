"""The RL loop every algorithm shares: rollout -> filter -> advantages -> update -> weight sync -> log.

`Trainer` owns the model, optimizer, rollout policy, task sampler, checkpoints and metrics. An algorithm
subclasses it and overrides only the hooks it changes:

    collect(tasks)            sampling strategy: which trajectories one step trains on
    advantages(trajectories)  one scalar (or one value per token) per trajectory
    loss(...)                 the policy loss on a micro-batch

Updates are exact under gradient accumulation: the loss of each micro-batch is normalised with counts
of the whole mini-batch (tokens, sequences), so micro-batch size changes nothing but memory.

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
import contextlib
import copy
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml

from palaestra.agents.base import SamplingParams
from palaestra.evaluation.evaluate import EvalResult
from palaestra.io import atomic_write_text
from palaestra.rollout.runner import RolloutConfig, Task
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.batching import MicroBatch, Normalizers, StepBatch, bucket_by_length, collate
from palaestra.trainers.core.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from palaestra.trainers.core.distributed import (
    all_gather_objects,
    broadcast_object,
    full_model_state,
    gradient_sync,
    init_distributed,
    shard_range,
    wrap_model,
)
from palaestra.trainers.core.forward import model_allows_shared_prefix, target_logits
from palaestra.trainers.core.held_out import evaluate_held_out, save_held_out
from palaestra.trainers.core.losses import entropy_from_logits, selected_logprobs
from palaestra.trainers.core.optim import build_optimizer, build_scheduler
from palaestra.trainers.core.preflight import RunStart, check_envs, prepare_run_dir
from palaestra.trainers.core.rollout_source import make_rollout_source, merged_model
from palaestra.trainers.core.sampler import WeightedEnv, make_task_sampler
from palaestra.trainers.core.tracking import MetricsWriter

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from palaestra.config import TrainConfig

__all__ = ["Normalizers", "RunStopped", "StepBatch", "Trainer"]

logger = logging.getLogger(__name__)


class RunStopped(RuntimeError):
    """The run stopped early; the message says why and where its work was saved."""


class _Mismatch:
    """Mean |sampling logprob - trainer logprob| over sampled tokens: `rollout/logprob_mismatch`."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, total: float, count: int) -> None:
        self.total += total
        self.count += count

    def metrics(self) -> dict[str, float]:
        return {"rollout/logprob_mismatch": self.total / self.count} if self.count else {}


def _cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX512-BF16 / AMX); True when unknown."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def _one_line(exc: BaseException) -> str:
    """`Type: message` of an exception, first line only."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


class Trainer:
    """Shared RL loop (see module docstring).

    Args:
        config: the whole run's configuration.
        model: a model to train instead of loading `config.model.name` (tests pass tiny models).
        tokenizer: its tokenizer (required with `model`).
    """

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
        if config.model.precision == "bf16" and self.device.type == "cpu" and not _cpu_has_native_bf16():
            warnings.warn(
                "model.precision=bf16 on a CPU without native bf16 (AVX512-BF16 or AMX): autocast emulates "
                "it and runs many times slower than fp32; set model.precision=fp32",
                stacklevel=2,
            )
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
        self.module = self._prepare_model(model)
        self.ref_model = self._reference_model()
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
            [WeightedEnv(e.id, e.weight, e.kwargs) for e in config.envs.train],
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
        self.writer: MetricsWriter | None = None
        # (step, folder) of the newest checkpoint this run wrote or resumed from
        self._saved: tuple[int, Path] | None = None

    # -- set-up ------------------------------------------------------------------------------------
    @property
    def optimizer_steps_per_rl_step(self) -> int:
        return self.config.algorithm.epochs * self.config.algorithm.mini_batches

    def _prepare_model(self, model: PreTrainedModel) -> torch.nn.Module:
        cfg = self.config.model
        model.to(self.device)
        if cfg.gradient_checkpointing:
            # non-reentrant checkpointing is the form DDP and FSDP2 support
            kwargs = {"use_reentrant": False} if self.dist.enabled else None
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            model.config.use_cache = False
        if cfg.lora is not None:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=cfg.lora.r,
                lora_alpha=cfg.lora.alpha,
                lora_dropout=cfg.lora.dropout,
                target_modules=cfg.lora.target_modules,
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)
        return model

    def _reference_model(self) -> torch.nn.Module | None:
        """A frozen copy of the initial policy when the loss has a KL term (LoRA: the base model)."""
        if self.config.algorithm.kl_coef == 0:
            return None
        if self.config.model.lora is not None:
            return None  # the adapter-disabled model is the reference; see `_reference_context`
        ref = copy.deepcopy(self.module).eval()
        ref.requires_grad_(False)
        if self.dist.enabled and self.dist.strategy == "fsdp":
            ref = wrap_model(ref, self.dist, self.device)  # sharded too; its passes are aligned in _update
        return ref

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.config.model.precision == "bf16":
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                yield
        else:
            yield

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

    async def _rollout(self, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
        """Roll out `tasks`; in a distributed run each rank its shard, then every rank gets them all.

        The gathered list is in task order with group indices as one process would number them, so
        what follows (advantages, filters, metrics) is the same on every rank and at any world size.
        """
        if not self.dist.enabled:
            return await self._rollout_here(tasks, config)
        lo, hi = shard_range(len(tasks), self.dist)
        shards = all_gather_objects(await self._rollout_here(tasks[lo:hi], config), self.dist)
        merged: list[Trajectory] = []
        offset = 0
        for shard in shards:
            groups = 1 + max((t.group_index for t in shard), default=-1)
            for t in shard:
                t.group_index += offset
            merged += shard
            offset += groups
        return merged

    async def _rollout_here(self, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
        if self.config.rollout.self_play:
            return await self._self_play(tasks, config)
        return await self.rollouts.run(tasks, config)

    async def collect(self, tasks: list[Task]) -> tuple[list[Trajectory], dict[str, float]]:
        """Sampling strategy: roll out `group_size` samples of each task. Algorithms override this."""
        return await self._rollout(tasks, self.rollout_config(self.step)), {}

    async def _self_play(self, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
        """`group_size` self-play games per task; every seat's trajectory is training data.

        Group `task_index * num_seats + seat` holds the G samples of one seat of one game (same
        start, same role), so group-relative advantages compare like with like.
        """
        from palaestra.rollout.matches import Match, game_of, play_matches_async

        matches, seat_names = [], []
        for task in tasks:
            game, _ = game_of(task.env_id, **task.env_kwargs)
            seat_names.append(game.possible_agents)
            matches += [
                Match(
                    task.env_id,
                    task.seed,
                    dict.fromkeys(game.possible_agents, self.policy),
                    task.env_kwargs,
                    j,
                )
                for j in range(config.group_size)
            ]
        results = await play_matches_async(matches, replace(config, group_size=1))
        trajectories: list[Trajectory] = []
        group = 0
        for i, seats in enumerate(seat_names):
            for k, seat in enumerate(seats):
                for j in range(config.group_size):
                    traj = results[i * config.group_size + j].trajectories[seat]
                    traj.group_index, traj.sample_index = group + k, j
                    if traj.turns:  # a seat the game ended for before it moved has nothing to learn
                        trajectories.append(traj)
            group += len(seats)
        decided = [r for r in results if r.error is None]
        self._self_play_metrics = {
            "self_play/draw_rate": _mean([float(r.winner is None) for r in decided]),
            "self_play/first_seat_win_rate": _mean(
                [float(r.winner == next(iter(r.match.seats))) for r in decided]
            ),
        }
        return trajectories

    def advantages(self, trajectories: list[Trajectory]) -> list[float | list[float]]:
        raise NotImplementedError(f"{type(self).__name__} must implement advantages()")

    def trainable(self, trajectories: list[Trajectory]) -> list[bool]:
        """Which trajectories enter the loss (all by default; e.g. DAPO overlong filtering drops some)."""
        return [True] * len(trajectories)

    def loss(
        self,
        logp: torch.Tensor,
        batch: MicroBatch,
        *,
        ref_logp: torch.Tensor | None,
        entropy: torch.Tensor | None,
        norm: Normalizers,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError(f"{type(self).__name__} must implement loss()")

    @property
    def needs_entropy_grad(self) -> bool:
        return False

    # -- model passes ------------------------------------------------------------------------------
    def _forward_logp(
        self, model: torch.nn.Module, batch: MicroBatch, *, with_entropy: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-target-token logprobs (B, T-1) at the rollout temperature, and entropies if asked.

        Logits are computed only at positions that predict policy tokens (`core/forward.py`: the
        batch's target window, or each row's suffix after a prompt computed once per group); both
        outputs are 0 elsewhere.
        """
        temperature = self.config.rollout.temperature or 1.0
        with self._autocast():
            target = target_logits(model, batch)
        # at least float32 (bf16 models); a float64 model keeps float64 (the exact-comparison tests)
        logits = (
            target.logits.to(torch.promote_types(target.logits.dtype, torch.float32)) / temperature
        )  # (B, K, V)
        logp = target.place(selected_logprobs(logits, target.targets))  # (B, T-1)
        entropy = None
        if with_entropy:
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.needs_entropy_grad):
                entropy = target.place(entropy_from_logits(logits))  # a metric only unless the loss uses it
        return logp, entropy

    @contextlib.contextmanager
    def _reference_context(self) -> Iterator[torch.nn.Module]:
        if self.ref_model is not None:
            yield self.ref_model
        else:  # LoRA: the base model without adapters
            with self.module.disable_adapter():
                yield self.module

    @torch.no_grad()
    def _recompute(
        self, mine: dict[int, MicroBatch], passes: int, filler: MicroBatch, mismatch: _Mismatch
    ) -> dict[int, torch.Tensor | None]:
        """Replace sampling logprobs with the trainer's own (if configured); compute reference logprobs.

        In a single-pass update the weights do not change before the one optimizer step, so the old
        logprobs equal the detached logprobs of the training forward pass itself; they are taken
        there (`_take_old_logp`) instead of in a second forward pass here, as TRL does.

        Args:
            mine: this rank's micro-batches by index.
            passes: forward passes every rank makes (FSDP2 all-gathers in each); after its own
                micro-batches a rank runs `filler` and discards the result.
            filler: a stand-in micro-batch for those extra passes.
            mismatch: accumulates the sampler-vs-trainer logprob gap.
        """
        algo = self.config.algorithm
        refs: dict[int, torch.Tensor | None] = {}
        was_training = self.module.training
        self.module.eval()
        items: list[tuple[int | None, MicroBatch]] = [*mine.items()]
        items += [(None, filler)] * (passes - len(items))
        for i, mb in items:
            if algo.recompute_old_logprobs and self.optimizer_steps_per_rl_step > 1:
                logp, _ = self._forward_logp(self.module, mb, with_entropy=False)
                if i is not None:
                    self._take_old_logp(mb, logp, mismatch)
            ref = None
            if algo.kl_coef > 0:
                with self._reference_context() as ref_model:
                    ref, _ = self._forward_logp(ref_model, mb, with_entropy=False)
            if i is not None:
                refs[i] = ref
        self.module.train(was_training)
        return refs

    @staticmethod
    def _take_old_logp(mb: MicroBatch, logp: torch.Tensor, mismatch: _Mismatch) -> None:
        """Use the trainer's logprobs as old logprobs; record how far the sampler's were from them."""
        logp = logp.detach() * mb.loss_mask
        mismatch.add(float(((logp - mb.old_logp).abs() * mb.loss_mask).sum()), mb.num_tokens)
        mb.old_logp = logp

    # -- one RL step -------------------------------------------------------------------------------
    def _update(self, batch: StepBatch) -> dict[str, float]:
        """Epochs x mini-batches of optimizer steps over the step's micro-batches.

        Every rank builds the same micro-batches; rank r trains those with index = r mod world_size,
        each mini-batch's loss normalised by counts of the whole mini-batch, with zero-weighted filler
        passes where a rank has fewer micro-batches than another (see `core/distributed.py`).
        """
        cfg, algo, ctx = self.config, self.config.algorithm, self.dist
        rows = batch.rows()
        if not rows:
            return {"update/skipped": 1.0}
        groups = bucket_by_length(
            rows, cfg.optimizer.micro_batch_tokens, keep_prompts_together=self.share_prefix
        )
        micro = [collate(g, self._pad_id, share_prefix=self.share_prefix) for g in groups]
        mine = {i: mb.to(self.device) for i, mb in enumerate(micro) if i % ctx.world_size == ctx.rank}
        filler = next(iter(mine.values())) if mine else micro[0].to(self.device)
        mismatch = _Mismatch()
        refs = self._recompute(mine, -(-len(micro) // ctx.world_size), filler, mismatch)
        history: dict[str, list[float]] = {}
        grad_norms: list[float] = []
        self.model.train()
        gen = torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + self.step)
        for _ in range(algo.epochs):
            order = torch.randperm(len(micro), generator=gen).tolist()
            for chunk in np.array_split(np.asarray(order), min(algo.mini_batches, len(micro))):
                chunk = chunk.tolist()
                norm = Normalizers(
                    tokens=sum(micro[i].num_tokens for i in chunk),
                    sequences=sum(len(micro[i].indices) for i in chunk),
                )
                local = [i for i in chunk if i in mine]
                passes = max(sum(i % ctx.world_size == r for i in chunk) for r in range(ctx.world_size))
                for k in range(passes):
                    i = local[k] if k < len(local) else None
                    mb = mine[i] if i is not None else filler
                    with gradient_sync(self.model, ctx, sync=k == passes - 1):
                        logp, entropy = self._forward_logp(self.model, mb, with_entropy=True)
                        if (
                            i is not None
                            and algo.recompute_old_logprobs
                            and self.optimizer_steps_per_rl_step == 1
                        ):
                            self._take_old_logp(mb, logp, mismatch)
                        ref = refs[i] if i is not None else (logp.detach() if algo.kl_coef > 0 else None)
                        loss, parts = self.loss(logp, mb, ref_logp=ref, entropy=entropy, norm=norm)
                        # DDP and FSDP2 average gradients over ranks: scale back to the sum
                        (loss * (ctx.world_size if i is not None else 0.0)).backward()
                    if i is not None:
                        for key, v in parts.items():
                            history.setdefault(key, []).append(v)
                grad_norms.append(self._optimizer_step())
        return self._update_metrics(micro, history, grad_norms, mismatch)

    def _update_metrics(
        self,
        micro: list[MicroBatch],
        history: dict[str, list[float]],
        grad_norms: list[float],
        mismatch: _Mismatch,
    ) -> dict[str, float]:
        """Loss parts of every rank's micro-batches, averaged as one process would."""
        merged: dict[str, list[float]] = {}
        for part in all_gather_objects(history, self.dist):
            for key, values in part.items():
                merged.setdefault(key, []).extend(values)
        totals = all_gather_objects((mismatch.total, mismatch.count), self.dist)
        mismatch.total, mismatch.count = sum(t for t, _ in totals), sum(c for _, c in totals)
        metrics = {**mismatch.metrics(), **{k: _mean(v) for k, v in merged.items()}}
        metrics["update/grad_norm"] = _mean(grad_norms)
        metrics["update/lr"] = self.scheduler.get_last_lr()[0]
        metrics["update/micro_batches"] = float(len(micro))
        metrics["update/padding_fraction"] = 1.0 - sum(int(mb.attention_mask.sum()) for mb in micro) / sum(
            mb.input_ids.numel() for mb in micro
        )
        return metrics

    def _optimizer_step(self) -> float:
        clip = self.config.optimizer.max_grad_norm
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else float("inf"))
        if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor holding the global norm
            norm = norm.full_tensor()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def _gather_rollout_weights(self) -> None:
        """FSDP2: gather the shards into the unsharded rollout copy (every rank calls it); else nothing."""
        if self.rollout_model is not self.module:
            self.rollout_model.load_state_dict(full_model_state(self.model))

    def _sync_rollout_weights(self) -> None:
        """Make the next rollouts use the trained weights (every rank calls it; see `rollout_source`)."""
        self._gather_rollout_weights()
        self.rollouts.sync_weights(self.rollout_model)

    def close(self) -> None:
        """Stop the rollout backend's engines or Ray workers (the process exiting does it too)."""
        self.rollouts.close()

    @property
    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    def train_step(self) -> dict[str, float]:
        """One RL step: collect, compute advantages, update, sync weights. Returns its metrics."""
        r = self.config.rollout
        t0 = time.perf_counter()
        tasks = self.sampler.sample(r.tasks_per_step)
        trajectories, collect_metrics = asyncio.run(self.collect(tasks))
        self._check_env_errors(trajectories)
        t1 = time.perf_counter()
        self.rollouts.release_memory()  # vllm sleep mode: free the engine's GPU memory for the update
        batch = StepBatch(trajectories, self.advantages(trajectories), self.trainable(trajectories))
        metrics = {**self.rollout_metrics(trajectories), **collect_metrics, **self._update(batch)}
        metrics.update(self.__dict__.pop("_self_play_metrics", {}))
        self._sync_rollout_weights()
        t2 = time.perf_counter()
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

    def _check_env_errors(self, trajectories: Sequence[Trajectory]) -> None:
        """Raise `RunStopped` when at least `rollout.max_env_error_fraction` of the episodes failed."""
        failed = [t.error for t in trajectories if t.error is not None]
        limit = self.config.rollout.max_env_error_fraction
        if failed and len(failed) / len(trajectories) >= limit:
            first = failed[0].partition("\n")[0]
            raise RunStopped(
                f"step {self.step + 1}: {len(failed)} of {len(trajectories)} episodes failed with an env "
                f"error (rollout.max_env_error_fraction={limit:g}); first: {first}"
            )

    @staticmethod
    def rollout_metrics(trajectories: Sequence[Trajectory]) -> dict[str, float]:
        rewards = [t.reward for t in trajectories]
        groups: dict[int, list[float]] = {}
        for t in trajectories:
            groups.setdefault(t.group_index, []).append(t.reward)
        return {
            "reward/mean": _mean(rewards),
            "reward/std": float(np.std(rewards)) if rewards else float("nan"),
            "reward/group_std_mean": _mean([float(np.std(g)) for g in groups.values()]),
            "reward/zero_variance_groups": _mean([float(np.ptp(g) == 0) for g in groups.values()]),
            "rollout/success": _mean([float(t.success) for t in trajectories]),
            "rollout/turns_mean": _mean([t.num_turns for t in trajectories]),
            "rollout/response_length": _mean(
                [t.num_generated_tokens / max(t.num_turns, 1) for t in trajectories]
            ),
            "rollout/format_error_rate": _mean(
                [t.num_format_errors / max(t.num_turns, 1) for t in trajectories]
            ),
            "rollout/env_errors": float(sum(t.error is not None for t in trajectories)),
            "rollout/episodes": float(len(trajectories)),
        }

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self) -> tuple[dict[str, float], list[EvalResult]]:
        """Evaluate on the held-out envs; returns metrics `eval/<env>/<name>` and the results.

        In a distributed run rank 0 evaluates while the others wait (up to
        `distributed.timeout_minutes`); every rank returns the metrics, only rank 0 the results.
        """
        if not self.dist.enabled:
            return self._evaluate_here()
        metrics, results = self._evaluate_here() if self.dist.is_main else (None, [])
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
        self._sync_rollout_weights()  # vllm: the engine started from the initial weights
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
            self._run_steps(history)
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
            model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
        self.dist.barrier()
        return path
