"""The `hf` backend: a transformers model serving concurrent requests with continuous batching.

Every episode coroutine awaits `HFPolicy.generate([request])`. A batching task on the event loop hands
the requests to `palaestra.agents.continuous_batching.ContinuousBatch` and runs it step by step: a
request that arrives while others decode joins the batch at the next step, and a finished row leaves
at once, so the long tails of multi-turn episodes keep sharing forward passes. Rows carry their own
sampling parameters and seeds. Models that batch cannot drive (multimodal rope, recurrent caches) get
static batches through `model.generate` (`palaestra.agents.hf_generate`; `sampler="generate"`
forces it).

On a GPU each step runs in a worker thread, so the loop keeps stepping envs meanwhile; on a CPU it
runs on the loop's own thread (yielding to it between steps), which is the thread that trains: torch's
OpenMP thread team belongs to the thread that starts it, and a second thread running the model with its
own team made each sampling call ~35% slower on 2 cores (benchmarks/grpo_vs_trl.py).

Weight versions: `weight_version` counts weight syncs. `sync_weights` (or `weight_update()` around an
in-place optimizer step) waits for the current decode step to end, changes the weights, and bumps the
version; rows in flight go on decoding with the new weights (partial rollouts), keep their KV cache
(as in-place update engines do), and record per token the version that sampled it
(`Generation.token_versions`).

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
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

import torch

from palaestra.agents.base import Generation, GenerationRequest
from palaestra.agents.continuous_batching import ContinuousBatch, Row, supports_continuous_batching
from palaestra.agents.hf_generate import StaticBatches
from palaestra.agents.models import chat_prompt_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


__all__ = ["HFPolicy"]

logger = logging.getLogger(__name__)


def _row_seed(seed: int) -> int:
    """A request's sampling seed, spread over 63 bits (nearby seeds give unrelated streams)."""
    digest = hashlib.blake2b(repr((seed,)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


class HFPolicy:
    """A `Policy` over a transformers causal LM.

    Args:
        model: the model (shared with the trainer: updates are seen by the next decode step).
        tokenizer: its tokenizer, with a chat template.
        name: label for results and logs.
        max_batch_size: most requests decoding at once.
        max_batch_tokens: bound on the batch's padded KV cache in positions (rows x columns, each
            row's whole budget counted when it joins); None for no bound beyond `max_batch_size`.
        continuous: False gives static batching: requests arriving while a batch decodes wait until its
            last row finished (finished rows still leave at once).
        batch_wait_s: how long an idle batcher waits after the first request for others to arrive.
        sampler: "auto" (continuous batching where the model supports it), "lean" (continuous
            batching, required) or "generate" (static `model.generate` batches).
        in_worker_thread: decode in a worker thread (default: on GPUs) or on the event loop's thread.

    Attributes:
        weight_version: the number of weight syncs so far (or the last version given to one).
        generate_calls: prefill forwards (continuous batching) or `generate` calls so far: how many
            groups of requests started decoding.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str = "hf",
        max_batch_size: int = 32,
        max_batch_tokens: int | None = None,
        continuous: bool = True,
        batch_wait_s: float = 0.002,
        sampler: Literal["auto", "lean", "generate"] = "auto",
        in_worker_thread: bool | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size}; it must be >= 1")
        if max_batch_tokens is not None and max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens={max_batch_tokens}; it must be >= 1 (or None for no bound)")
        if sampler not in ("auto", "lean", "generate"):
            raise ValueError(f"sampler={sampler!r}; expected 'auto', 'lean' or 'generate'")
        stepwise = sampler != "generate" and supports_continuous_batching(model)
        if sampler == "lean" and not stepwise:
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
        self.lean = stepwise
        self.engine: ContinuousBatch | StaticBatches
        if stepwise:
            self.engine = ContinuousBatch(
                model,
                eos_ids=self.eos_ids,
                pad_id=self.pad_id,
                tokenizer=tokenizer,
                max_rows=max_batch_size,
                max_tokens=max_batch_tokens,
                join_mid_batch=continuous,
            )
        else:
            self.engine = StaticBatches(
                model, eos_ids=self.eos_ids, pad_id=self.pad_id, tokenizer=tokenizer, max_rows=max_batch_size
            )
        if in_worker_thread is None:
            in_worker_thread = next(model.parameters()).device.type != "cpu"
        self.in_worker_thread = in_worker_thread
        self.weight_version = 0
        self._weights_lock = threading.Lock()  # held by each decode step and each weight update
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="palaestra-hf")
        self._queue: asyncio.Queue[Row] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _eos_ids(self) -> list[int]:
        ids = [self.tokenizer.eos_token_id]
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids += gen_eos if isinstance(gen_eos, list) else [gen_eos]
        return sorted({int(i) for i in ids if i is not None})

    @property
    def generate_calls(self) -> int:
        return self.engine.prefills

    # -- public API --------------------------------------------------------------------------------
    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate one reply per request (decoded alongside every other request in flight).

        A request with `sampling.seed` samples from its own generator, whatever else is in the batch;
        an unseeded one draws its seed from torch's global generator when it is submitted.
        """
        self._ensure_worker()
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        rows = []
        for request in requests:
            if request.prompt_token_ids is not None:
                ids = [int(i) for i in request.prompt_token_ids]
            else:
                ids = chat_prompt_ids(self.tokenizer, list(request.messages))
            if not ids:
                raise ValueError(f"request {request.request_id!r} has an empty prompt")
            seed = request.sampling.seed
            if seed is None:
                seed = int(torch.randint(0, 2**62, ()))
            rows.append(Row(ids, request.sampling, _row_seed(seed), tag=loop.create_future()))
        for row in rows:
            self._queue.put_nowait(row)
        return list(await asyncio.gather(*(self._future(r) for r in rows)))

    @contextmanager
    def weight_update(self, *, version: int | None = None) -> Iterator[None]:
        """Hold decoding between two steps while the caller changes the model's weights in place.

        On exit the weight version becomes `version`, or goes up by one. Rows in flight resume with the
        new weights and keep their KV cache.
        """
        with self._weights_lock:
            yield
            self.weight_version = self.weight_version + 1 if version is None else version

    def sync_weights(
        self, state_dict: Mapping[str, torch.Tensor] | None = None, *, version: int | None = None
    ) -> None:
        """Make the next decode step use new weights, and set the weight version.

        The hf backend shares the trainer's model object, so without a state dict only the version
        changes; with one, the weights are copied in (between two decode steps, see `weight_update`).

        Args:
            state_dict: weights to load (non-strict: a LoRA adapter's or a subset).
            version: the new weight version; None adds one.
        """
        with self.weight_update(version=version):
            if state_dict is not None:
                self.model.load_state_dict(state_dict, strict=False)

    async def close(self) -> None:
        """Stop the batcher and the worker thread."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._executor.shutdown(wait=True)

    # -- batching ----------------------------------------------------------------------------------
    @staticmethod
    def _future(row: Row) -> asyncio.Future[Generation]:
        assert isinstance(row.tag, asyncio.Future)
        return row.tag

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            # a new event loop (e.g. one asyncio.run per training step): drop what the old one left
            # and start a batcher on this one
            self.engine.abort()
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._batch_loop(self._queue))

    def _submit(self, row: Row) -> None:
        if self._future(row).done():  # cancelled meanwhile
            return
        try:
            self.engine.submit(row)
        except ValueError as exc:
            self._future(row).set_exception(exc)

    def _step(self) -> list[Row]:
        with self._weights_lock:
            return self.engine.step(self.weight_version)

    async def _batch_loop(self, queue: asyncio.Queue[Row]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.engine.has_work():
                self._submit(await queue.get())
                await asyncio.sleep(self.batch_wait_s)
            while not queue.empty():
                self._submit(queue.get_nowait())
            if not self.engine.has_work():
                continue
            try:
                if self.in_worker_thread:
                    finished = await loop.run_in_executor(self._executor, self._step)
                else:
                    finished = self._step()
            except Exception as exc:
                failed = self.engine.abort()
                logger.exception("decoding failed for %d requests", len(failed))
                for row in failed:
                    if not self._future(row).done():
                        self._future(row).set_exception(exc)
                continue
            for row in finished:
                if not self._future(row).done():
                    self._future(row).set_result(self._generation(row))
            if not self.in_worker_thread:
                await asyncio.sleep(0)  # let the replied episodes and envs run, and new requests arrive

    def _generation(self, row: Row) -> Generation:
        assert row.finish_reason is not None
        text = self.tokenizer.decode(
            [t for t in row.token_ids if t not in self.eos_ids], skip_special_tokens=True
        )
        assert isinstance(text, str), type(text)  # one sequence decodes to one string
        return Generation(
            text=text,
            token_ids=tuple(row.token_ids),
            logprobs=tuple(row.logprobs),
            finish_reason=row.finish_reason,
            token_versions=tuple(row.versions),
        )
