"""The `hf` backend: a transformers model sampling concurrent requests in micro-batches.

Every episode coroutine awaits `HFPolicy.generate([request])`; a batching task on the event loop
collects the requests that are pending at the same moment (all episodes of a rollout step, or every
episode whose env just answered), groups those with identical sampling parameters, and samples each
group in one batch. On a GPU the batch runs in a worker thread, so the loop keeps stepping envs
meanwhile; on a CPU it runs on the loop's own thread, which is the thread that trains: torch's
OpenMP thread team belongs to the thread that starts it, and a second thread running the model
with its own team made each sampling call ~35% slower on 2 cores (benchmarks/grpo_vs_trl.py). The sampler is
`palaestra.agents.decoding.sample` (shared prefill of identical prompts, finished rows leave the
batch) for decoder-only LMs with a standard KV cache, else `model.generate` (`sampler="generate"`
forces it).

Token-exact: a request's `prompt_token_ids` are used verbatim; the reply's ids are the sampled ids,
never re-tokenized text, and include the end-of-turn token when one was sampled.

Logprobs are those of the sampling distribution before top-p/top-k truncation: log_softmax(logits / T)
at the sampled id (T = 1 for greedy decoding), computed from the raw logits. This is what the trainer
recomputes at the same temperature.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

import torch

from palaestra.agents.base import FinishReason, Generation, GenerationRequest, SamplingParams
from palaestra.agents.decoding import sample, supports_lean_sampling
from palaestra.agents.models import chat_prompt_ids

if TYPE_CHECKING:
    from transformers import GenerationMixin, PreTrainedModel, PreTrainedTokenizerBase

    class _CausalLM(PreTrainedModel, GenerationMixin):
        """What `model` is (a *ForCausalLM class): transformers 5's PreTrainedModel has no `generate`."""


__all__ = ["HFPolicy"]

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    request: GenerationRequest
    prompt_ids: list[int]
    future: asyncio.Future[Generation] = field(repr=False)


def _batch_seed(seeds: Sequence[int | None]) -> int | None:
    if all(s is None for s in seeds):
        return None
    digest = hashlib.blake2b(repr(tuple(seeds)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


class HFPolicy:
    """A `Policy` over a transformers causal LM.

    Args:
        model: the model (shared with the trainer: updates are seen by the next generate call).
        tokenizer: its tokenizer, with a chat template.
        name: label for results and logs.
        max_batch_size: most requests in one `generate` call.
        batch_wait_s: how long the batcher waits after the first request for others to arrive.
        sampler: "auto" (palaestra's sampler where the model supports it), "lean" or "generate".
        in_worker_thread: sample in a worker thread (default: on GPUs) or on the event loop's thread.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str = "hf",
        max_batch_size: int = 32,
        batch_wait_s: float = 0.002,
        sampler: Literal["auto", "lean", "generate"] = "auto",
        in_worker_thread: bool | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size}; it must be >= 1")
        if sampler not in ("auto", "lean", "generate"):
            raise ValueError(f"sampler={sampler!r}; expected 'auto', 'lean' or 'generate'")
        if sampler == "lean" and not supports_lean_sampling(model):
            raise ValueError(
                f"sampler='lean' does not support {type(model).__name__}; use sampler='generate' or 'auto'"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = self._eos_ids()
        self.lean = sampler == "lean" or (sampler == "auto" and supports_lean_sampling(model))
        if in_worker_thread is None:
            in_worker_thread = next(model.parameters()).device.type != "cpu"
        self.in_worker_thread = in_worker_thread
        self.generate_calls = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="palaestra-hf")
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _eos_ids(self) -> list[int]:
        ids = [self.tokenizer.eos_token_id]
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids += gen_eos if isinstance(gen_eos, list) else [gen_eos]
        return sorted({int(i) for i in ids if i is not None})

    # -- public API --------------------------------------------------------------------------------
    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate one reply per request (batched with every other pending request)."""
        self._ensure_worker()
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        pending = []
        for request in requests:
            if request.prompt_token_ids is not None:
                ids = [int(i) for i in request.prompt_token_ids]
            else:
                ids = chat_prompt_ids(self.tokenizer, list(request.messages))
            item = _Pending(request, ids, loop.create_future())
            pending.append(item)
            self._queue.put_nowait(item)
        return list(await asyncio.gather(*(p.future for p in pending)))

    def sync_weights(self, state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
        """Make the next generations use new weights.

        The hf backend shares the trainer's model object, so without a state dict this is a no-op;
        with one, the weights are copied in.
        """
        if state_dict is not None:
            self.model.load_state_dict(state_dict, strict=False)

    async def close(self) -> None:
        """Stop the batcher and the worker thread."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._executor.shutdown(wait=True)

    # -- batching ----------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            # a new event loop (e.g. one asyncio.run per training step): start a batcher on it
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._batch_loop(self._queue))

    async def _batch_loop(self, queue: asyncio.Queue[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            await asyncio.sleep(self.batch_wait_s)
            while not queue.empty():
                items.append(queue.get_nowait())
            for batch in self._split(items):
                live = [p for p in batch if not p.future.done()]
                if not live:
                    continue
                try:
                    if self.in_worker_thread:
                        results = await loop.run_in_executor(self._executor, self._generate_batch, live)
                    else:
                        results = self._generate_batch(live)
                except Exception as exc:
                    logger.exception("generate failed for a batch of %d", len(live))
                    for p in live:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                for p, result in zip(live, results, strict=True):
                    if not p.future.done():
                        p.future.set_result(result)

    def _split(self, items: list[_Pending]) -> list[list[_Pending]]:
        """Group by sampling parameters (seed aside), then cut to `max_batch_size`."""
        groups: dict[tuple, list[_Pending]] = {}
        for p in items:
            s = p.request.sampling
            key = (s.max_new_tokens, s.temperature, s.top_p, s.top_k, s.stop)
            groups.setdefault(key, []).append(p)
        return [
            g[i : i + self.max_batch_size]
            for g in groups.values()
            for i in range(0, len(g), self.max_batch_size)
        ]

    # -- one generate call (worker thread) ---------------------------------------------------------
    def _generation_config(self, sampling: SamplingParams):
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

    def _generate_batch(self, batch: list[_Pending]) -> list[Generation]:
        sampling = batch[0].request.sampling
        seed = _batch_seed([p.request.sampling.seed for p in batch])
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[]), torch.inference_mode():
                if seed is not None:
                    torch.manual_seed(seed)
                if self.lean:
                    out = sample(
                        self.model,
                        [p.prompt_ids for p in batch],
                        sampling,
                        eos_ids=self.eos_ids,
                        pad_id=self.pad_id,
                        tokenizer=self.tokenizer if sampling.stop else None,
                    )
                    new, logprobs = out.token_ids, out.logprobs
                else:
                    new, logprobs = self._generate(batch, sampling)
        finally:
            self.model.train(was_training)
        self.generate_calls += 1
        return [self._row(new[i].tolist(), logprobs[i].tolist(), sampling) for i in range(len(batch))]

    def _generate(self, batch: list[_Pending], sampling: SamplingParams) -> tuple[torch.Tensor, torch.Tensor]:
        """`model.generate` on the left-padded batch: (B, N) sampled ids and their logprobs."""
        width = max(len(p.prompt_ids) for p in batch)
        device = next(self.model.parameters()).device
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, p in enumerate(batch):  # left padding
            input_ids[i, width - len(p.prompt_ids) :] = torch.as_tensor(p.prompt_ids)
            attention_mask[i, width - len(p.prompt_ids) :] = 1
        # transformers types generate's self as a Protocol (for the ty checker) that none of its models
        # meets under mypy, LlamaForCausalLM included
        out = cast("_CausalLM", self.model).generate(  # type: ignore[misc]
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=self._generation_config(sampling),
            tokenizer=self.tokenizer if sampling.stop else None,
        )
        assert (
            not isinstance(out, torch.Tensor) and out.logits is not None
        )  # return_dict_in_generate, output_logits
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

    def _decode(self, ids: list[int]) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        assert isinstance(text, str), type(text)  # one sequence decodes to one string
        return text

    def _row(self, ids: list[int], logprobs: list[float], sampling: SamplingParams) -> Generation:
        end = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
        finish: FinishReason
        if end is None:
            body, finish = ids, "length"
        else:
            body = ids[:end]
            text = self._decode(body)
            if sampling.stop and any(text.endswith(s) for s in sampling.stop):
                finish = "stop"  # a stop string ended it; what follows is padding
            else:
                body, finish = ids[: end + 1], "stop"
        if finish == "length" and sampling.stop:
            text = self._decode(body)
            if any(text.endswith(s) for s in sampling.stop):
                finish = "stop"
        text = self._decode([t for t in body if t not in self.eos_ids])
        return Generation(
            text=text, token_ids=tuple(body), logprobs=tuple(logprobs[: len(body)]), finish_reason=finish
        )
