"""transformers calls under the names the installed release has: palaestra's forward passes, sampler and
checkpointing raise no deprecation warning, on old and new releases alike."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

from palaestra.agents.base import SamplingParams
from palaestra.agents.decoding import sample
from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer
from palaestra.agents.transformers_api import (
    cache_kwargs,
    enable_activation_checkpointing,
    is_activation_checkpointing,
    progress_bars_off,
)
from palaestra.trainers.core.batching import Row, collate
from palaestra.trainers.core.forward import target_logits


@pytest.fixture
def model():
    return build_tiny_model(build_tiny_tokenizer(), seed=0)


class _NewNames(torch.nn.Module):
    def forward(self, input_ids, cache=None):
        return input_ids


class _OldNames(torch.nn.Module):
    def forward(self, input_ids, past_key_values=None):
        return input_ids


def test_the_cache_goes_under_the_keyword_the_forward_pass_takes(model):
    from peft import LoraConfig, get_peft_model

    cache = object()
    assert cache_kwargs(_NewNames(), cache) == {"cache": cache}  # type: ignore[arg-type]
    assert cache_kwargs(_OldNames(), cache) == {"past_key_values": cache}  # type: ignore[arg-type]
    (keyword,) = cache_kwargs(model, cache)  # type: ignore[arg-type]
    assert keyword in inspect.signature(type(model).forward).parameters
    with warnings.catch_warnings():  # peft's own deprecated call (see `prepare_model`), not under test here
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    assert cache_kwargs(peft_model, cache) == {keyword: cache}  # type: ignore[arg-type]


def _deprecations(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]


def test_sampling_and_both_training_passes_raise_no_deprecation_warning(model):
    prompt = list(range(5, 25))  # one long prompt, three short replies: worth sharing
    rows = [
        Row([*prompt, 30 + i, 40 + i], [0] * 20 + [1, 1], [0.0] * 22, advantage=float(i - 1), index=i)
        for i in range(3)
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = sample(
            model, [[5, 6, 7]] * 2, SamplingParams(max_new_tokens=4, temperature=0), eos_ids=[1], pad_id=0
        )
        shared = collate(rows, pad_id=0, share_prefix=True)
        assert shared.prefix is not None  # the pass that hands the model a KV cache
        target_logits(model, shared).logits.sum().backward()
        target_logits(model, collate(rows, pad_id=0)).logits.sum().backward()
    assert out.token_ids.shape == (2, 4)
    assert _deprecations(caught) == []


def test_activation_checkpointing_turns_on_silently(model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not is_activation_checkpointing(model)
        enable_activation_checkpointing(model, {"use_reentrant": False})
        assert is_activation_checkpointing(model)
        assert not is_activation_checkpointing(torch.nn.Linear(2, 2))
    assert _deprecations(caught) == []


def test_the_trainers_model_setup_with_lora_and_checkpointing_is_silent(model):
    from palaestra.config import LoraConfig, ModelConfig
    from palaestra.trainers.core.distributed import DistContext
    from palaestra.trainers.core.model_setup import prepare_model

    cfg = ModelConfig(name="tiny-random", gradient_checkpointing=True, lora=LoraConfig(r=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = prepare_model(model, cfg, DistContext(), torch.device("cpu"))
        assert is_activation_checkpointing(trained)
    assert _deprecations(caught) == []


@pytest.mark.parametrize("enabled_before", [True, False])
def test_progress_bars_off_restores_the_setting(enabled_before):
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    try:
        (hf_logging.enable_progress_bar if enabled_before else hf_logging.disable_progress_bar)()
        with progress_bars_off():
            assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.is_progress_bar_enabled() == enabled_before
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()
