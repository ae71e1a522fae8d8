"""Rollout orchestration overhead with vLLM on a GPU: `rollout_overhead.py`'s comparison, GPU settings.

The model is Qwen2.5-0.5B-Instruct when it is in the local Hugging Face cache (nothing is
downloaded); otherwise a model of the same shape (Qwen2 architecture, ~0.5B parameters, random
weights, SmolLM2's tokenizer) is built locally and saved once. Random weights rarely stop early, so
every turn uses its full token budget: a fair load test of the orchestration, not of the model.

    pip install -e '.[vllm]'          # vLLM with CUDA
    python benchmarks/gpu_rollout.py  # goal: <= 10% overhead against raw AsyncLLM.generate
    python benchmarks/gpu_rollout.py --episodes 256 --max-new-tokens 128
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rollout_overhead

QWEN = "Qwen/Qwen2.5-0.5B-Instruct"


def cached_qwen() -> str | None:
    """The local snapshot folder of Qwen2.5-0.5B-Instruct, or None (never downloads)."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(QWEN, local_files_only=True)
    except Exception:
        return None


def built_model(cache: Path) -> str:
    """A randomly initialised Qwen2 model of Qwen2.5-0.5B's shape, saved as bf16 once."""
    folder = cache / "qwen2-0.5b-shape-random"
    if (folder / "config.json").exists():
        return str(folder)
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from palaestra.agents.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_rollout.py needs a CUDA GPU; on CPU run benchmarks/rollout_overhead.py")
    args = sys.argv[1:]
    if "--model" not in args:
        cache = Path("~/.cache/palaestra/bench-models").expanduser()
        args += ["--model", cached_qwen() or built_model(cache)]
    defaults = {
        "--backends": "vllm",
        "--device": "cuda",
        "--episodes": "128",
        "--max-new-tokens": "64",
        "--vllm-dtype": "bfloat16",
        "--hf-dtype": "bfloat16",
    }
    for flag, value in defaults.items():
        if flag not in args:
            args += [flag, value]
    if "--compile" not in args:
        args.append("--compile")  # CUDA graphs + torch.compile: what production rollouts use
    rollout_overhead.main(args, title="GPU rollout overhead")


if __name__ == "__main__":
    main()
