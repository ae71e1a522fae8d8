"""Benchmark models of real shapes with random weights, built locally (no download, no weights carried).

`build("qwen2.5-0.5b", folder)` saves a Qwen2 model with Qwen2.5-0.5B's configuration (layers, widths,
heads, vocabulary of 151,936) and random weights, and a tokenizer: the project's tiny byte-level BPE
(`build_tiny_tokenizer`) padded with placeholder tokens to the model's vocabulary, so the embedding,
LM head and logits are the real model's size. A random model samples the 151,936 ids about uniformly,
so it almost never ends a reply (EOS is 1 id in 151,936): generation runs to its full length, the same
in every trainer and backend compared. "tiny" is the 3M-parameter Llama of the CPU tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# the configurations published with the models (config.json), minus what only matters for long contexts
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
    },
    "qwen2.5-1.5b": {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
    },
}
# the same architecture and vocabulary, tiny widths: the rehearsal of the GPU check runs it on a CPU
SHAPES["qwen2-tiny"] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "tie_word_embeddings": True,
}
QWEN_VOCAB = 151_936


def _letters(i: int) -> str:
    """`i` in base 26 as lowercase letters (0 -> "a", 26 -> "ba"): distinct names with varied vowels."""
    out = chr(97 + i % 26)
    while i >= 26:
        i //= 26
        out = chr(97 + i % 26) + out
    return out


def padded_tokenizer(vocab_size: int) -> Any:
    """The tiny tokenizer with placeholder tokens `<letters>` up to `vocab_size` ids.

    The placeholders' letters vary, so replies of a random model get varied vowel-fraction rewards in
    `grpo_vs_trl.py` (non-zero advantages: both trainers do the whole update).
    """
    from palaestra.agents.models import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    tok.add_tokens([f"<{_letters(i)}>" for i in range(vocab_size - len(tok))])
    return tok


def build(name: str, folder: Path, *, device: str = "cpu", seed: int = 0) -> Path:
    """Save model `name` (a key of SHAPES) with random bf16 weights and its tokenizer into `folder`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if (folder / "config.json").exists():
        return folder
    tok = padded_tokenizer(QWEN_VOCAB)
    config = Qwen2Config(
        vocab_size=QWEN_VOCAB,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **SHAPES[name],
    )
    torch.manual_seed(seed)
    with torch.device(device):  # initialise on the GPU when there is one: seconds instead of a minute
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()  # the trainers' workers measure their own peaks; leave them the memory
    return folder
