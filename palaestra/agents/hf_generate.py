"""Static batches through `model.generate`, for models `ContinuousBatch` cannot drive.

Multimodal rope models, recurrent or sliding-window caches and encoder-decoders need transformers'
`prepare_inputs_for_generation`; for them the hf backend samples each batch of rows with identical
sampling parameters in one `model.generate` call, with the interface of `ContinuousBatch` (a `step`
runs one whole batch). A batch's rows share one seed, derived from their own seeds.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import torch

from palaestra.agents.continuous_batching import Row

if TYPE_CHECKING:
    from transformers import GenerationConfig, GenerationMixin, PreTrainedModel, PreTrainedTokenizerBase

    from palaestra.agents.base import SamplingParams

    class _CausalLM(PreTrainedModel, GenerationMixin):
        """What `model` is (a *ForCausalLM class): transformers 5's PreTrainedModel has no `generate`."""


__all__ = ["StaticBatches"]


def batch_seed(seeds: Sequence[int]) -> int:
    """One seed for a batch, from its rows' seeds (the same rows give the same seed)."""
    digest = hashlib.blake2b(repr(tuple(seeds)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


class StaticBatches:
    """Rows sampled in static batches of identical sampling parameters by `model.generate`.

    Args: as `ContinuousBatch` (without `max_tokens`).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        eos_ids: Sequence[int],
        pad_id: int,
        tokenizer: PreTrainedTokenizerBase | None = None,
        max_rows: int = 32,
    ):
        if max_rows < 1:
            raise ValueError(f"max_rows={max_rows}; it must be >= 1")
        self.model = model
        self.eos_ids = sorted({int(i) for i in eos_ids})
        self.pad_id = pad_id
        self.tokenizer = tokenizer
        self.max_rows = max_rows
        self.waiting: deque[Row] = deque()
        self.prefills = 0  # generate calls

    def has_work(self) -> bool:
        return bool(self.waiting)

    def submit(self, row: Row) -> None:
        if not row.prompt_ids:
            raise ValueError("an empty prompt: give at least one token")
        self.waiting.append(row)

    def abort(self) -> list[Row]:
        dropped = list(self.waiting)
        self.waiting.clear()
        return dropped

    def step(self, version: int = 0) -> list[Row]:
        """Generate the first waiting row and up to `max_rows - 1` later ones with the same parameters."""
        key = _params(self.waiting[0].sampling)
        batch = [r for r in self.waiting if _params(r.sampling) == key][: self.max_rows]
        self.waiting = deque(r for r in self.waiting if r not in batch)
        sampling = batch[0].sampling
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[]), torch.inference_mode():
                torch.manual_seed(batch_seed([r.seed for r in batch]))
                new, logprobs = self._generate(batch, sampling)
        finally:
            self.model.train(was_training)
        self.prefills += 1
        for i, row in enumerate(batch):
            self._finish(row, new[i].tolist(), logprobs[i].tolist(), version)
        return batch

    def _generation_config(self, sampling: SamplingParams) -> GenerationConfig:
        from transformers import GenerationConfig

        kwargs = {
            "max_new_tokens": sampling.max_new_tokens,
            "do_sample": not sampling.greedy,
            "pad_token_id": self.pad_id,
            "eos_token_id": self.eos_ids,
            "return_dict_in_generate": True,
            "output_logits": True,
        }
        if not sampling.greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
        if sampling.stop:
            kwargs["stop_strings"] = list(sampling.stop)
        return GenerationConfig(**kwargs)

    def _generate(self, batch: list[Row], sampling: SamplingParams) -> tuple[torch.Tensor, torch.Tensor]:
        """`model.generate` on the left-padded batch: (B, N) sampled ids and their logprobs."""
        width = max(len(r.prompt_ids) for r in batch)
        device = next(self.model.parameters()).device
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):  # left padding
            input_ids[i, width - len(r.prompt_ids) :] = torch.as_tensor(r.prompt_ids)
            attention_mask[i, width - len(r.prompt_ids) :] = 1
        # transformers types generate's self as a Protocol (for the ty checker) that none of its models
        # meets under mypy, LlamaForCausalLM included
        out = cast("_CausalLM", self.model).generate(  # type: ignore[misc]
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=self._generation_config(sampling),
            tokenizer=self.tokenizer if sampling.stop else None,
        )
        assert not isinstance(out, torch.Tensor) and out.logits is not None  # return_dict, output_logits
        new = out.sequences[:, width:].cpu()  # (B, N)
        temperature = sampling.temperature if not sampling.greedy else 1.0
        # step by step: no stacked (B, N, V) copy of the logits and no (B, N, V) log-softmax
        logprobs = torch.stack(
            [
                torch.log_softmax(step.float().cpu() / temperature, dim=-1).gather(-1, new[:, k, None])[:, 0]
                for k, step in enumerate(out.logits)
            ],
            dim=1,
        )  # (B, N)
        return new, logprobs

    def _finish(self, row: Row, ids: list[int], logprobs: list[float], version: int) -> None:
        """Cut a generate row (padded after its end) to the reply and say why it ended."""
        stops = row.sampling.stop
        end = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
        if end is None:
            body = ids
            row.finish_reason = "stop" if stops and self._ends_with_stop(body, stops) else "length"
        elif stops and self._ends_with_stop(ids[:end], stops):
            body, row.finish_reason = ids[:end], "stop"  # a stop string ended it; what follows is padding
        else:
            body, row.finish_reason = ids[: end + 1], "stop"
        row.token_ids, row.logprobs, row.versions = body, logprobs[: len(body)], [version] * len(body)

    def _ends_with_stop(self, ids: list[int], stops: tuple[str, ...]) -> bool:
        assert self.tokenizer is not None
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return any(str(text).endswith(s) for s in stops)


def _params(s: SamplingParams) -> tuple:
    return (s.max_new_tokens, s.temperature, s.top_p, s.top_k, s.stop)
