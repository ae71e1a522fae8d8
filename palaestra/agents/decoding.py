"""A lean batched sampler for transformers causal LMs, built for RL rollouts.

`model.generate` is general; a rollout batch has structure it cannot use. `sample` keeps the model's
own forward pass and KV cache (`DynamicCache`) and transformers' logits warpers and stop-string
criterion, and adds three things:

* shared prefill: identical prompts (the `group_size` samples of one GRPO task) are prefilled once
  and their cache rows copied, so a group of G costs one prompt forward instead of G;
* compaction: rows that finished (end-of-turn token or stop string) leave the batch, so the decode
  steps left cost what the unfinished rows need, not the longest reply's batch;
* per-token logprobs of the sampling distribution are computed step by step, without keeping a
  (B, N, V) stack of logits.

The returned layout is `generate`'s: (B, max_new_tokens) ids, `pad_id` after a row finished.
Randomness comes from torch's global generator (`torch.multinomial`), so a seeded caller gets the
same samples on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from palaestra.agents.transformers_api import cache_kwargs

if TYPE_CHECKING:
    from transformers import LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

    from palaestra.agents.base import SamplingParams

__all__ = ["Sampled", "sample", "supports_lean_sampling"]

# compact the batch once this share of its rows has finished
_COMPACT_FRACTION = 0.125


@dataclass
class Sampled:
    """Output of `sample`.

    Attributes:
        token_ids: (B, N) sampled ids; `pad_id` after a row's end.
        logprobs: (B, N) log_softmax(logits / T) at each sampled id (T = 1 when greedy); 0 after the end.
        prefill_rows: prompts actually prefilled (distinct prompts).
    """

    token_ids: torch.Tensor
    logprobs: torch.Tensor
    prefill_rows: int


def supports_lean_sampling(model: PreTrainedModel) -> bool:
    """Whether `sample` can drive `model`: a decoder-only LM whose default cache is a `DynamicCache`."""
    supports = getattr(type(model), "_supports_default_dynamic_cache", None)
    config = getattr(model, "config", None)
    return (
        callable(supports)
        and bool(supports())
        and not getattr(config, "is_encoder_decoder", False)
        and getattr(config, "model_type", "") not in _NEEDS_GENERATE
    )


# model families whose generation needs `prepare_inputs_for_generation` extras (multimodal rope
# deltas, recurrent states): these keep `model.generate`
_NEEDS_GENERATE = frozenset(
    {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "mamba", "mamba2", "jamba", "falcon_mamba", "zamba", "bamba"}
)


def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids, mask


def _warpers(sampling: SamplingParams) -> LogitsProcessorList:
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = LogitsProcessorList()
    if sampling.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        warpers.append(TopKLogitsWarper(sampling.top_k))
    if sampling.top_p < 1.0:
        warpers.append(TopPLogitsWarper(sampling.top_p))
    return warpers


@torch.inference_mode()
def sample(
    model: PreTrainedModel,
    prompts: Sequence[Sequence[int]],
    sampling: SamplingParams,
    *,
    eos_ids: Sequence[int],
    pad_id: int,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Sampled:
    """Sample one reply per prompt with the model's KV cache.

    Args:
        model: a causal LM (see `supports_lean_sampling`), in eval mode.
        prompts: token ids per row; identical prompts are prefilled once.
        sampling: budget, temperature (0 = greedy), top-p/top-k, stop strings.
        eos_ids: ids that end a reply (kept as the reply's last token).
        pad_id: filler after a row's end.
        tokenizer: needed when `sampling.stop` is set (stop strings are matched on decoded tokens).

    Raises:
        ValueError: `sampling.stop` is set but no tokenizer was given.
    """
    from transformers import DynamicCache
    from transformers.generation.stopping_criteria import StopStringCriteria

    device = next(model.parameters()).device
    n_rows, budget = len(prompts), sampling.max_new_tokens
    distinct: dict[tuple[int, ...], int] = {}
    owner = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
    ids, mask = _left_pad(list(distinct), pad_id)
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        **cache_kwargs(model, cache),
        logits_to_keep=1,
    )
    logits = out.logits[:, -1]
    if len(distinct) < n_rows:  # copy each distinct prompt's cache to its rows
        select = torch.as_tensor(owner, device=device)
        cache.batch_select_indices(select)
        logits, mask, positions = logits[select], mask[select], positions[select]
    next_position = positions[:, -1:] + 1

    eos = torch.as_tensor(list(eos_ids), device=device)
    warpers = None if sampling.greedy else _warpers(sampling)
    stop = None
    if sampling.stop:
        if tokenizer is None:
            raise ValueError(f"sampling.stop={list(sampling.stop)} needs the tokenizer: pass tokenizer=")
        stop = StopStringCriteria(tokenizer, list(sampling.stop))
    temperature = 1.0 if sampling.greedy else sampling.temperature
    token_ids = torch.full((n_rows, budget), pad_id, dtype=torch.long)
    logprobs = torch.zeros((n_rows, budget))
    rows = torch.arange(n_rows, device=device)  # live batch row -> output row
    finished = torch.zeros(n_rows, dtype=torch.bool, device=device)  # per live batch row
    history = ids[owner] if stop is not None else None  # what the stop criterion reads
    for k in range(budget):
        logits = logits.float()
        if warpers is None:  # greedy
            chosen = logits.argmax(-1)
        else:
            # temperature, top-k and top-p never read input_ids (which transformers types as LongTensor)
            probs = torch.softmax(warpers(None, logits.clone()), dim=-1)  # type: ignore[arg-type]
            chosen = torch.multinomial(probs, 1)[:, 0]
        logp = torch.log_softmax(logits / temperature, dim=-1).gather(-1, chosen[:, None])[:, 0]
        live = ~finished
        out_rows = rows[live].cpu()
        token_ids[out_rows, k] = chosen[live].cpu()
        logprobs[out_rows, k] = logp[live].cpu()
        done = torch.isin(chosen, eos)
        if stop is not None and history is not None:
            history = torch.cat([history, chosen[:, None]], dim=1)
            done |= stop(history, logits).to(device)
        finished |= done
        n_finished = int(finished.sum())
        if k == budget - 1 or n_finished == len(rows):
            break
        if n_finished >= max(1.0, _COMPACT_FRACTION * len(rows)):  # drop finished rows from the batch
            keep = (~finished).nonzero()[:, 0]
            cache.batch_select_indices(keep)
            rows, chosen, mask, next_position = rows[keep], chosen[keep], mask[keep], next_position[keep]
            history = history[keep] if history is not None else None
            finished = finished[keep]
        # a finished row not compacted away yet keeps decoding; its output is never written
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
        out = model(
            input_ids=chosen[:, None],
            attention_mask=mask,
            position_ids=next_position,
            **cache_kwargs(model, cache),
        )
        logits = out.logits[:, -1]
        next_position = next_position + 1
    return Sampled(token_ids=token_ids, logprobs=logprobs, prefill_rows=len(distinct))
