"""The learner: from a step's batch to optimizer steps (forward passes, the algorithm's loss, updates).

`Learner` is the half of `Trainer` that trains; the other half (`trainer.py`) collects the data and runs
the loop. The hooks an algorithm overrides here:

    loss(logp, batch, ...)     the policy loss of a micro-batch (its per-row data is in the batch)
    needs_reference            the loss has a KL term: compute reference logprobs
    recompute_old_logprobs     use the trainer's own logprobs as pi_old instead of the sampler's (which
                               stay in `MicroBatch.behav_logp`, for the off-policy corrections)
    needs_entropy_grad         the loss uses the entropy (else it is a metric, without gradient)

Updates are exact under gradient accumulation: the loss of each micro-batch is normalised with counts
of the whole mini-batch (tokens, sequences), so micro-batch size changes nothing but memory. In a
distributed run every rank builds the same micro-batches and trains its share of them (see
`core/distributed.py`); one optimizer step equals the single-process step on the same batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from palaestra.trainers.core.batching import MicroBatch, Normalizers, StepBatch, bucket_by_length, collate
from palaestra.trainers.core.distributed import DistContext, all_gather_objects, gradient_sync
from palaestra.trainers.core.forward import target_logits
from palaestra.trainers.core.losses import entropy_from_logits, selected_logprobs
from palaestra.trainers.core.model_setup import autocast, reference_context
from palaestra.trainers.core.tracking import nan_mean

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from palaestra.config import TrainConfig

__all__ = ["Learner"]


class _Mismatch:
    """Mean |sampling logprob - trainer logprob| over sampled tokens: `rollout/logprob_mismatch`."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, total: float, count: int) -> None:
        self.total += total
        self.count += count

    def metrics(self) -> dict[str, float]:
        return {"rollout/logprob_mismatch": self.total / self.count} if self.count else {}


class Learner:
    """Forward passes, the loss hook and optimizer steps over a `StepBatch` (see the module docstring).

    `Trainer` sets the attributes below in its constructor.
    """

    config: TrainConfig
    dist: DistContext
    device: torch.device
    tokenizer: PreTrainedTokenizerBase
    module: torch.nn.Module  # the model itself
    model: torch.nn.Module  # what the training pass calls: DDP / FSDP2 wrapper, or `module`
    ref_model: torch.nn.Module | None  # None: no KL term, or LoRA (the adapter-disabled module)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    share_prefix: bool  # compute a group's shared prompt once per micro-batch (`core/forward.py`)
    step: int

    # -- hooks -------------------------------------------------------------------------------------
    def loss(
        self,
        logp: torch.Tensor,
        batch: MicroBatch,
        *,
        ref_logp: torch.Tensor | None,
        entropy: torch.Tensor | None,
        norm: Normalizers,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one micro-batch and its metrics.

        Args:
            logp: (B, T-1) log pi_theta of the target tokens (with gradient).
            batch: the micro-batch: masks, old logprobs, advantages and per-row fields.
            ref_logp: (B, T-1) reference logprobs when `needs_reference`, else None.
            entropy: (B, T-1) per-token entropy (with gradient only if `needs_entropy_grad`).
            norm: counts of the whole mini-batch, for exact gradient accumulation.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement loss()")

    @property
    def needs_reference(self) -> bool:
        return False

    @property
    def recompute_old_logprobs(self) -> bool:
        return False

    @property
    def needs_entropy_grad(self) -> bool:
        return False

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def optimizer_steps_per_rl_step(self) -> int:
        return self.config.algorithm.epochs * self.config.algorithm.mini_batches

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """bf16 autocast when `model.precision=bf16`; nothing otherwise."""
        return autocast(self.config.model, self.device)

    # -- model passes ------------------------------------------------------------------------------
    def forward_logp(
        self, model: torch.nn.Module, batch: MicroBatch, *, with_entropy: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-target-token logprobs (B, T-1) at the rollout temperature, and entropies if asked.

        Logits are computed only at positions that predict policy tokens (`core/forward.py`: the
        batch's target window, or each row's suffix after a prompt computed once per group); both
        outputs are 0 elsewhere.
        """
        temperature = self.config.rollout.temperature or 1.0
        with self.autocast():
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
    def _reference(self) -> Iterator[torch.nn.Module]:
        with reference_context(self.ref_model, self.module) as ref:
            yield ref

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
        refs: dict[int, torch.Tensor | None] = {}
        was_training = self.module.training
        self.module.eval()
        items: list[tuple[int | None, MicroBatch]] = [*mine.items()]
        items += [(None, filler)] * (passes - len(items))
        for i, mb in items:
            if self.recompute_old_logprobs and self.optimizer_steps_per_rl_step > 1:
                logp, _ = self.forward_logp(self.module, mb, with_entropy=False)
                if i is not None:
                    self._take_old_logp(mb, logp, mismatch)
            ref = None
            if self.needs_reference:
                with self._reference() as ref_model:
                    ref, _ = self.forward_logp(ref_model, mb, with_entropy=False)
            if i is not None:
                refs[i] = ref
        self.module.train(was_training)
        return refs

    @staticmethod
    def _take_old_logp(mb: MicroBatch, logp: torch.Tensor, mismatch: _Mismatch) -> None:
        """Use the trainer's logprobs as old logprobs; record how far the sampler's were from them.

        The sampler's stay in `mb.behav_logp` for the off-policy corrections (`losses.policy_loss`).
        """
        logp = logp.detach() * mb.loss_mask
        mismatch.add(float(((logp - mb.behav_logp).abs() * mb.loss_mask).sum()), mb.num_tokens)
        mb.old_logp = logp

    # -- one update --------------------------------------------------------------------------------
    def micro_batches(self, batch: StepBatch) -> list[MicroBatch]:
        """The step's rows, length-bucketed and padded into micro-batches (on the CPU)."""
        share = self.share_prefix
        groups = bucket_by_length(
            batch.rows(), self.config.optimizer.micro_batch_tokens, keep_prompts_together=share
        )
        return [collate(g, self.pad_id, share_prefix=share) for g in groups]

    def update(self, batch: StepBatch) -> dict[str, float]:
        """Epochs x mini-batches of optimizer steps over the step's micro-batches.

        Every rank builds the same micro-batches; rank r trains those with index = r mod world_size,
        each mini-batch's loss normalised by counts of the whole mini-batch, with zero-weighted filler
        passes where a rank has fewer micro-batches than another (see `core/distributed.py`).
        """
        cfg, algo, ctx = self.config, self.config.algorithm, self.dist
        micro = self.micro_batches(batch)
        if not micro:
            return {"update/skipped": 1.0}
        mine = {i: mb.to(self.device) for i, mb in enumerate(micro) if i % ctx.world_size == ctx.rank}
        filler = next(iter(mine.values())) if mine else micro[0].to(self.device)
        mismatch = _Mismatch()
        refs = self._recompute(mine, -(-len(micro) // ctx.world_size), filler, mismatch)
        history: dict[str, list[float]] = {}
        grad_norms: list[float] = []
        self.model.train()
        gen = torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + self.step)
        take_old = self.recompute_old_logprobs and self.optimizer_steps_per_rl_step == 1
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
                        logp, entropy = self.forward_logp(self.model, mb, with_entropy=True)
                        if i is not None and take_old:
                            self._take_old_logp(mb, logp, mismatch)
                        ref = refs[i] if i is not None else (logp.detach() if self.needs_reference else None)
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
        metrics = {**mismatch.metrics(), **{k: nan_mean(v) for k, v in merged.items()}}
        metrics["update/grad_norm"] = nan_mean(grad_norms)
        metrics["update/lr"] = float(self.scheduler.get_last_lr()[0])
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
