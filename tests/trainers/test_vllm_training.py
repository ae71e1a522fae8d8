"""GRPO with the vllm rollout backend: the engine gets the trainer's weights after every update."""

from __future__ import annotations

import asyncio

import pytest
import torch

import palaestra
from palaestra.agents import GenerationRequest, SamplingParams
from palaestra.config import load_config
from palaestra.trainers import make_trainer
from tests.vowel_env import VowelEnv

pytestmark = pytest.mark.slow


def test_vllm_backend_trains_and_stays_in_sync(tmp_path, vllm_env):
    from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer

    palaestra.register_env("test/Letters-v0", VowelEnv, override=True)
    tok = build_tiny_tokenizer()
    cfg = load_config(
        None,
        ["agent.backend=vllm"],
        run={"name": "v", "output_dir": str(tmp_path), "steps": 2, "seed": 0},
        envs={"train": [{"id": "test/Letters-v0"}]},
        rollout={"tasks_per_step": 4, "group_size": 4, "max_new_tokens": 8},
        optimizer={"lr": 1e-2},
        logging={"tensorboard": False, "progress": False},
        checkpoint={"every": 0},
    )
    trainer = make_trainer(cfg, model=build_tiny_model(tok, seed=0), tokenizer=tok)
    try:
        history = [trainer.train_step() for _ in range(2)]
        # sampling logprobs (vLLM) vs the trainer's recomputation: equal only if every sync landed
        assert all(h["rollout/logprob_mismatch"] < 1e-3 for h in history), history
        assert history[-1]["update/grad_norm"] > 0
        messages = [{"role": "user", "content": "Task 1: write."}]
        sp = SamplingParams(max_new_tokens=6, temperature=0)
        (gen,) = asyncio.run(trainer.policy.generate([GenerationRequest(messages, sp)]))
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
        model = trainer.model.eval()
        with torch.no_grad():
            logits = model(torch.tensor([prompt + list(gen.token_ids)])).logits[0, len(prompt) - 1 : -1]
        expected = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(gen.token_ids)[:, None])
        # vLLM's float32 CPU kernels vs transformers': ulp-level (~1e-6) logprob gaps; 1e-4 = 100x margin
        assert torch.allclose(torch.tensor(gen.logprobs), expected[:, 0], atol=1e-4)
    finally:
        trainer.policy.close_sync()


def test_sleep_mode_needs_the_vllm_backend():
    from palaestra.config import ConfigError

    with pytest.raises(ConfigError, match=r"sleep_mode=true needs agent\.backend=vllm"):
        load_config(None, ["agent.sleep_mode=true"], envs={"train": [{"id": "palaestra/Math-ArithEasy-v0"}]})
