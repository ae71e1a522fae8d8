"""The GPU benchmarks' models: real Qwen2.5 shapes, random weights, a local tokenizer of the real vocabulary."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import shapes


def test_a_built_model_has_the_shape_and_the_vocabulary(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    folder = shapes.build("qwen2-tiny", tmp_path / "m")
    config, tok = AutoConfig.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert config.model_type == "qwen2" and config.vocab_size == shapes.QWEN_VOCAB == len(tok)
    assert {k: getattr(config, k) for k in shapes.SHAPES["qwen2-tiny"]} == shapes.SHAPES["qwen2-tiny"]
    assert tok.decode(tok("Write a word.")["input_ids"]) == "Write a word."
    assert tok.eos_token == "<|im_end|>" and tok.chat_template  # the tiny tokenizer's ChatML, kept
    assert shapes.build("qwen2-tiny", folder) == folder  # built once
