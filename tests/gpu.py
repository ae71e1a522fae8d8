"""Where the `gpu`-marked tests run: CUDA, skipped without it.

`PALAESTRA_GPU_TEST_DEVICE=cpu` runs them on the CPU instead: `scripts/gpu-check.sh --rehearse` does so
to prove the tests themselves (their set-up, references and assertions) before the GPU machine runs
them; the comparisons are then CPU against CPU and prove nothing about CUDA.
"""

from __future__ import annotations

import os

import pytest
import torch

DEVICE = os.environ.get("PALAESTRA_GPU_TEST_DEVICE", "cuda")

# every test module that imports this sets `pytestmark = GPU`
GPU = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE == "cuda" and not torch.cuda.is_available(),
        reason="needs a CUDA GPU (bash scripts/gpu-check.sh runs the gpu tests on the GPU machine)",
    ),
]
