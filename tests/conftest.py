"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random model over it."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from palaestra.agents.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_model(smollm2_tokenizer):
    from palaestra.agents.models import build_tiny_model

    return build_tiny_model(smollm2_tokenizer, seed=0)


@pytest.fixture
def tiny_policy(tiny_model, smollm2_tokenizer):
    from palaestra.agents.hf import HFPolicy

    policy = HFPolicy(tiny_model, smollm2_tokenizer, name="hf:tiny-random", max_batch_size=16)
    yield policy
    asyncio.run(policy.close())
