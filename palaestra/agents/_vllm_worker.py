"""Code that runs inside vLLM's worker processes (loaded through `worker_extension_cls`).

vLLM mixes `WeightSyncExtension` into its worker class, so the engine calls its methods by name with
`collective_rpc`; nothing here runs in the trainer's process.

Tied embeddings: vLLM's in-place reload (`reload_weights`) restores each layer to checkpoint format,
loads it and re-processes it for its kernels. A tied LM head receives no weight of its own (its loader
skips `lm_head.weight`), so vLLM puts the head's old kernel tensors back and the head goes out of step
with the new embedding. After the reload we therefore tie the head to the new embedding again and
re-run the head's weight processing (on CPU that rebuilds its packed GEMM; on GPU it is a no-op).
"""

from __future__ import annotations

from typing import Any

__all__ = ["WeightSyncExtension"]


def _tied_pair(model: Any) -> tuple[Any, Any] | None:
    """(lm_head, input embedding) of a model whose config ties them, else None."""
    from vllm.model_executor.layers.vocab_parallel_embedding import (
        ParallelLMHead,
        VocabParallelEmbedding,
    )

    lm_head = getattr(model, "lm_head", None)
    if not isinstance(lm_head, ParallelLMHead):
        return None
    embeds = [
        m
        for _, m in model.named_modules()
        if isinstance(m, VocabParallelEmbedding) and not isinstance(m, ParallelLMHead)
    ]
    if len(embeds) != 1:
        raise RuntimeError(f"expected one input embedding in a tied model, found {len(embeds)}")
    return lm_head, embeds[0]


class WeightSyncExtension:
    """Worker methods for loading the trainer's weights into the running model."""

    model_runner: Any  # set by vLLM's worker

    def palaestra_load_weights(self, path: str) -> int:
        """Load a safetensors file of HF-named weights into the model in place.

        Args:
            path: the file (the trainer writes it; HF parameter names, any dtype).

        Returns:
            How many tensors were read.
        """
        from safetensors.torch import load_file

        tensors = load_file(path)
        self.model_runner.reload_weights(weights_iterator=iter(tensors.items()))
        config = self.model_runner.model_config.hf_config.get_text_config()
        if getattr(config, "tie_word_embeddings", False):
            pair = _tied_pair(self.model_runner.get_model())
            if pair is not None:
                lm_head, embed = pair
                lm_head.weight = embed.weight
                lm_head.quant_method.process_weights_after_loading(lm_head)
        return len(tensors)
