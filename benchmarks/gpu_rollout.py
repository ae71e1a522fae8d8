"""Rollout orchestration overhead with vLLM on a GPU: `rollout_overhead.py`'s comparison, GPU settings.

The model is Qwen2.5-0.5B-Instruct when it is in the local Hugging Face cache (nothing is
downloaded); otherwise a model of the same shape (`--shape`, default qwen2.5-0.5b: Qwen2 architecture,
real vocabulary, random weights, `benchmarks/shapes.py`) is built locally and saved once. Random weights
rarely stop early, so every turn uses its full token budget: a fair load test of the orchestration,
not of the model.

    pip install -e '.[vllm]'          # vLLM with CUDA
    python benchmarks/gpu_rollout.py  # goal: <= 10% overhead against raw AsyncLLM.generate
    python benchmarks/gpu_rollout.py --episodes 256 --max-new-tokens 128
    # the hf backend against a raw batched `generate` loop (no vLLM needed; goal: >= 0.9x its tokens/s)
    python benchmarks/gpu_rollout.py --backends hf --shape qwen2.5-1.5b
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rollout_overhead
import shapes

QWEN = "Qwen/Qwen2.5-0.5B-Instruct"


def cached_qwen() -> str | None:
    """The local snapshot folder of Qwen2.5-0.5B-Instruct, or None (never downloads)."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(QWEN, local_files_only=True)
    except Exception:
        return None


def main() -> None:
    import torch

    args = sys.argv[1:]
    shape = "qwen2.5-0.5b"
    if "--shape" in args:
        at = args.index("--shape")
        shape = args[at + 1]
        del args[at : at + 2]
    device = args[args.index("--device") + 1] if "--device" in args else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_rollout.py needs a CUDA GPU; on CPU run benchmarks/rollout_overhead.py")
    if "--model" not in args:
        cache_dir = (
            args[args.index("--cache") + 1] if "--cache" in args else "~/.cache/palaestra/bench-models"
        )
        cache = Path(cache_dir).expanduser()
        cached = cached_qwen() if shape == "qwen2.5-0.5b" else None
        folder = cached or str(shapes.build(shape, cache / f"{shape}-random", device=device))
        args += ["--model", folder]
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
    if "--compile" not in args and "vllm" in args[args.index("--backends") + 1]:
        args.append("--compile")  # CUDA graphs + torch.compile: what production rollouts use
    rollout_overhead.main(args, title="GPU rollout overhead")


if __name__ == "__main__":
    main()
