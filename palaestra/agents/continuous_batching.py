"""Continuous batching for the hf backend: requests join and leave a decoding batch at every step.

`ContinuousBatch` keeps one left-padded `DynamicCache` over the rows being decoded. Each `step`:

1. admits waiting rows, as many as `max_rows` and the KV budget allow, in arrival order;
2. runs one decode forward for the rows already in the batch, and one prefill forward for the rows
   joining (identical prompts, e.g. the samples of one GRPO group, are prefilled once);
3. merges the joiners' cache into the batch's (the shorter one left-padded to the other's width);
4. samples one token per row with that row's own sampling parameters and random generator;
5. lets finished rows (end-of-turn token, stop string, budget) leave, and drops the leading cache
   columns that only padding still uses.

A row's positions are its own (prompt length + tokens so far), and padding is masked, so what a row
decodes does not depend on the rows beside it: greedy tokens equal one-at-a-time decoding, and
logprobs do up to float32 reassociation in batched kernels. A seeded row samples from its own
`torch.Generator`, so its reply does not depend on its batch-mates either.

Each sampled token records the weight version passed to the `step` that sampled it. Weights may
change between two steps (the caller serialises that); the rows in flight keep their KV cache,
computed with the older weights, as in-place update engines (vLLM, SGLang) do.

transformers' own continuous batching (`generate_batch`, `ContinuousBatchingManager`) was weighed
first: it takes one sampling configuration per manager, no per-request seed or stop strings, and
returns the logprobs of the processed (top-p/top-k truncated) distribution, not the sampling
distribution's (see `Generation.logprobs`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import torch

from palaestra.agents.decoding import _warpers, supports_lean_sampling
from palaestra.agents.transformers_api import cache_kwargs

if TYPE_CHECKING:
    from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase
    from transformers.cache_utils import DynamicLayer
    from transformers.generation.stopping_criteria import StopStringCriteria

    from palaestra.agents.base import FinishReason, SamplingParams

__all__ = ["ContinuousBatch", "Row", "supports_continuous_batching"]


@dataclass(eq=False)
class Row:
    """One request being decoded.

    Attributes:
        prompt_ids: the prompt's token ids.
        sampling: its sampling parameters.
        seed: seeds the row's random generator (unused when greedy).
        tag: the caller's handle (e.g. the future to resolve).
        token_ids: sampled ids so far (the end-of-turn token included once sampled).
        logprobs: log_softmax(logits / T) at each sampled id (T = 1 when greedy).
        versions: the weight version that sampled each token.
        finish_reason: set when the row has finished.
    """

    prompt_ids: list[int]
    sampling: SamplingParams
    seed: int
    tag: object = field(default=None, repr=False)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    generator: torch.Generator | None = field(default=None, repr=False)


def supports_continuous_batching(model: PreTrainedModel) -> bool:
    """Whether `ContinuousBatch` can drive `model`: a decoder-only LM whose cache layers all keep every position."""
    if not supports_lean_sampling(model):
        return False
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)


class ContinuousBatch:
    """A batch of rows that requests join and leave between decode steps (see the module docstring).

    Args:
        model: a causal LM for which `supports_continuous_batching` holds; put in eval mode per step.
        eos_ids: ids that end a reply (kept as its last token).
        pad_id: the id fed at padded positions (masked out).
        tokenizer: needed for stop strings.
        max_rows: most rows decoding at once.
        max_tokens: bound on the padded KV cache (rows x columns, a row's whole budget counted at
            admission); None for no bound. A row that alone exceeds it still runs, alone.
        join_mid_batch: False gives static batching (the anchor of `benchmarks/continuous_batching.py`):
            rows join only an empty batch, so a batch decodes until its last row finishes.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        eos_ids: Sequence[int],
        pad_id: int,
        tokenizer: PreTrainedTokenizerBase | None = None,
        max_rows: int = 32,
        max_tokens: int | None = None,
        join_mid_batch: bool = True,
    ):
        if max_rows < 1:
            raise ValueError(f"max_rows={max_rows}; it must be >= 1")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens={max_tokens}; it must be >= 1 (or None for no bound)")
        self.model = model
        self.eos_ids = frozenset(int(i) for i in eos_ids)
        self.pad_id = pad_id
        self.tokenizer = tokenizer
        self.max_rows = max_rows
        self.max_tokens = max_tokens
        self.join_mid_batch = join_mid_batch
        self.device = next(model.parameters()).device
        self.waiting: deque[Row] = deque()
        self.prefills = 0  # prefill forwards run (groups of rows that joined)
        self._stops: dict[tuple[str, ...], StopStringCriteria] = {}
        self._reset()

    def _reset(self) -> None:
        self.rows: list[Row] = []
        self._cache: DynamicCache | None = None
        self._mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)  # (B, W)

    @property
    def width(self) -> int:
        """Columns of the batch's KV cache (its longest row, padding included)."""
        return self._mask.shape[1]

    def has_work(self) -> bool:
        return bool(self.rows or self.waiting)

    def submit(self, row: Row) -> None:
        """Queue a row; it joins the batch at the next `step` that has room for it."""
        if row.sampling.stop and self.tokenizer is None:
            raise ValueError(f"sampling.stop={list(row.sampling.stop)} needs the tokenizer")
        if not row.prompt_ids:
            raise ValueError("an empty prompt: give at least one token")
        if not row.sampling.greedy:
            row.generator = torch.Generator(device=self.device).manual_seed(row.seed)
        self.waiting.append(row)

    def abort(self) -> list[Row]:
        """Drop every row (after a failed step); returns them."""
        dropped = [*self.rows, *self.waiting]
        self.waiting.clear()
        self._reset()
        return dropped

    # -- one step ------------------------------------------------------------------------------------
    def step(self, version: int = 0) -> list[Row]:
        """Admit waiting rows, sample one token for every row, and return the rows that finished.

        Args:
            version: the weight version of this step's forward passes, recorded per sampled token.
        """
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                joining = self._admit()
                logits = []
                if self.rows:
                    logits.append(self._decode())
                if joining:
                    logits.append(self._prefill(joining))
                self.rows += joining
                return self._sample(torch.cat(logits).float(), version) if self.rows else []
        finally:
            self.model.train(was_training)

    def _admit(self) -> list[Row]:
        joining: list[Row] = []
        if self.rows and not self.join_mid_batch:
            return joining
        while self.waiting and len(self.rows) + len(joining) < self.max_rows:
            if self.max_tokens is not None and (self.rows or joining):
                rows = [*self.rows, *joining, self.waiting[0]]
                width = max(self.width, *(len(r.prompt_ids) for r in rows))
                budget = max(r.sampling.max_new_tokens - len(r.token_ids) for r in rows)
                if len(rows) * (width + budget) > self.max_tokens:
                    break
            joining.append(self.waiting.popleft())
        return joining

    def _decode(self) -> torch.Tensor:
        """One forward of the batch's last tokens: (B, V) next-token logits."""
        last = torch.as_tensor([r.token_ids[-1] for r in self.rows], device=self.device)[:, None]
        positions = torch.as_tensor(
            [len(r.prompt_ids) + len(r.token_ids) - 1 for r in self.rows], device=self.device
        )[:, None]
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self.rows), 1))], dim=1)
        assert self._cache is not None
        out = self.model(
            input_ids=last,
            attention_mask=self._mask,
            position_ids=positions,
            **cache_kwargs(self.model, self._cache),
        )
        return out.logits[:, -1]

    def _prefill(self, joining: list[Row]) -> torch.Tensor:
        """Prefill the joining rows and merge their cache into the batch's: (J, V) next-token logits."""
        from transformers import DynamicCache

        distinct: dict[tuple[int, ...], int] = {}
        owner = [distinct.setdefault(tuple(r.prompt_ids), len(distinct)) for r in joining]
        width = max(len(p) for p in distinct)
        ids = torch.full((len(distinct), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(distinct), width), dtype=torch.long)
        for i, p in enumerate(distinct):  # left padding
            ids[i, width - len(p) :] = torch.as_tensor(p)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            **cache_kwargs(self.model, cache),
            logits_to_keep=1,
        )
        logits = out.logits[:, -1]
        if len(distinct) < len(joining):  # copy each distinct prompt's cache to its rows
            select = torch.as_tensor(owner, device=self.device)
            cache.batch_select_indices(select)
            logits, mask = logits[select], mask[select]
        self.prefills += 1
        if self._cache is None:
            self._cache, self._mask = cache, mask
        else:
            self._mask = _concat_left_padded(self._mask, mask)
            for layer, new in zip(_kv_layers(self._cache), _kv_layers(cache), strict=True):
                assert layer.keys is not None and layer.values is not None, "a layer the prefill skipped"
                assert new.keys is not None and new.values is not None, "a layer the prefill skipped"
                layer.keys = _concat_left_padded(layer.keys, new.keys)
                layer.values = _concat_left_padded(layer.values, new.values)
        return logits

    def _sample(self, logits: torch.Tensor, version: int) -> list[Row]:
        """Pick each row's next token from `logits` (B, V), record it, and retire finished rows."""
        temperature = torch.as_tensor(
            [r.sampling.temperature if not r.sampling.greedy else 1.0 for r in self.rows], device=self.device
        )
        chosen = logits.argmax(-1)  # (B,); the greedy rows' choice
        by_params: dict[tuple[float, int, float], list[int]] = {}
        for i, r in enumerate(self.rows):
            if not r.sampling.greedy:
                by_params.setdefault((r.sampling.temperature, r.sampling.top_k, r.sampling.top_p), []).append(
                    i
                )
        for index in by_params.values():
            warpers = _warpers(self.rows[index[0]].sampling)
            # temperature, top-k and top-p never read input_ids (which transformers types as LongTensor)
            probs = torch.softmax(warpers(None, logits[index].clone()), dim=-1)  # type: ignore[arg-type]
            for j, i in enumerate(index):
                chosen[i] = torch.multinomial(probs[j], 1, generator=self.rows[i].generator)[0]
        logp = torch.log_softmax(logits / temperature[:, None], dim=-1).gather(-1, chosen[:, None])[:, 0]
        finished: list[int] = []
        keep: list[int] = []
        for i, (r, token, lp) in enumerate(zip(self.rows, chosen.tolist(), logp.tolist(), strict=True)):
            r.token_ids.append(token)
            r.logprobs.append(lp)
            r.versions.append(version)
            if token in self.eos_ids or self._hit_stop(r):
                r.finish_reason = "stop"
            elif len(r.token_ids) >= r.sampling.max_new_tokens:
                r.finish_reason = "length"
            (keep if r.finish_reason is None else finished).append(i)
        done = [self.rows[i] for i in finished]
        if done:
            self._retire(keep)
        return done

    def _hit_stop(self, row: Row) -> bool:
        if not row.sampling.stop:
            return False
        stop = self._stops.get(row.sampling.stop)
        if stop is None:
            from transformers.generation.stopping_criteria import StopStringCriteria

            assert self.tokenizer is not None  # checked by submit
            stop = self._stops[row.sampling.stop] = StopStringCriteria(
                self.tokenizer, list(row.sampling.stop)
            )
        tail = (row.prompt_ids + row.token_ids)[-stop.maximum_token_len :]
        return bool(stop(torch.as_tensor([tail]), None)[0])  # the criterion never reads the scores

    def _retire(self, keep: list[int]) -> None:
        """Keep only the rows at `keep`, and drop cache columns no kept row uses."""
        if not keep:
            self._reset()
            return
        assert self._cache is not None
        self.rows = [self.rows[i] for i in keep]
        index = torch.as_tensor(keep, device=self.device)
        self._cache.batch_select_indices(index)
        self._mask = self._mask[index]
        first = int(self._mask.any(0).int().argmax())  # leading columns that are padding in every row
        if first > 0:
            self._mask = self._mask[:, first:]
            for layer in _kv_layers(self._cache):
                assert layer.keys is not None and layer.values is not None, "a layer the prefill skipped"
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]


def _kv_layers(cache: DynamicCache) -> list[DynamicLayer]:
    """The cache's layers, all `DynamicLayer`s for a model `supports_continuous_batching` accepts."""
    return cast("list[DynamicLayer]", cache.layers)


def _concat_left_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Stack two batches along dim 0, left-padding the narrower one with zeros along its sequence axis.

    Masks are (B, W); cache tensors are (B, heads, W, head_dim).
    """
    axis = 1 if a.dim() == 2 else 2
    width = max(a.shape[axis], b.shape[axis])

    def pad(t: torch.Tensor) -> torch.Tensor:
        missing = width - t.shape[axis]
        if missing == 0:
            return t
        shape = list(t.shape)
        shape[axis] = missing
        return torch.cat([t.new_zeros(shape), t], dim=axis)

    return torch.cat([pad(a), pad(b)], dim=0)
