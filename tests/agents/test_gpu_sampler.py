"""The hf backend on a GPU: the sampler's greedy tokens and logprobs equal `generate` on CUDA, and the
policy, which samples in a worker thread on a GPU, returns the same replies."""

from __future__ import annotations

import asyncio

import torch

from palaestra.agents import GenerationRequest, SamplingParams
from palaestra.agents.decoding import sample
from palaestra.agents.hf import HFPolicy
from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer
from tests.gpu import DEVICE, GPU

pytestmark = GPU


def _model():
    # float32 on the device: greedy argmax ties under bf16 would make a token-exact comparison of two
    # different kernels' orders flaky; bf16 sampling is exercised by the GPU benchmarks
    return build_tiny_model(build_tiny_tokenizer(), seed=0).float().to(DEVICE).eval()


def _generate(model, prompts, max_new, eos, pad_id=0):
    """transformers `generate`, greedy, left-padded, with each step's logits: the reference."""
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id, device=DEVICE)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=DEVICE)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :], mask[i, width - len(p) :] = torch.tensor(p), 1
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=max_new,
            eos_token_id=eos,
            pad_token_id=pad_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
    new = out.sequences[:, width:]
    steps = [
        torch.log_softmax(s.float(), -1).gather(-1, new[:, k, None])[:, 0] for k, s in enumerate(out.logits)
    ]
    return new.cpu(), torch.stack(steps, 1).cpu()


def test_greedy_tokens_and_logprobs_equal_generate_on_the_device():
    model = _model()
    assert next(model.parameters()).device.type == DEVICE
    prompts = [[5, 6, 7, 8], [5, 6, 7, 8], [20, 21], [30, 31, 32, 33, 34, 35], [20, 21]]
    free, _ = _generate(model, prompts, 16, eos=[1])
    eos = int(torch.bincount(free[:, 2:].flatten()).argmax())  # a token rows sample mid-way: early ends
    expected, expected_logp = _generate(model, prompts, 16, eos=[eos])
    out = sample(model, prompts, SamplingParams(max_new_tokens=16, temperature=0), eos_ids=[eos], pad_id=0)
    assert out.prefill_rows == 3  # identical prompts were prefilled once
    lengths = [(row == eos).nonzero()[0].item() + 1 if (row == eos).any() else 16 for row in expected]
    assert min(lengths) < 16, "no row ended early: the test would not cover finished rows leaving the batch"
    tokens, logp = out.token_ids.cpu(), out.logprobs.cpu()
    for i, n in enumerate(lengths):
        assert tokens[i, :n].tolist() == expected[i, :n].tolist(), f"row {i}"
        # the sampler's cached steps vs generate's: the same float32 maths in other kernel orders; on CUDA
        # (TF32 off, torch's default for matmuls) that moves a logprob by ~1e-6; 1e-4 is a 100x margin,
        # and a wrong cache copy or position id moves it by >1e-2
        torch.testing.assert_close(logp[i, :n], expected_logp[i, :n], atol=1e-4, rtol=1e-4)


def test_the_policy_samples_in_a_worker_thread_and_matches_the_sampler():
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, seed=0).float().to(DEVICE).eval()
    policy = HFPolicy(model, tok, max_batch_size=8)
    assert policy.in_worker_thread == (DEVICE != "cpu")
    greedy = SamplingParams(max_new_tokens=12, temperature=0)
    messages = [[{"role": "user", "content": "count " * (i + 1)}] for i in range(6)]

    async def run():
        try:
            return [
                r[0]
                for r in await asyncio.gather(
                    *(policy.generate([GenerationRequest(m, greedy)]) for m in messages)
                )
            ]
        finally:
            await policy.close()

    outs = asyncio.run(run())
    assert policy.generate_calls == 1  # the six concurrent requests were one batch
    for m, got in zip(messages, outs, strict=True):
        ids = tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        alone = sample(model, [ids], greedy, eos_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
        n = len(got.token_ids)
        assert list(got.token_ids) == alone.token_ids[0, :n].tolist()
        # a batch of six left-padded rows vs one row: float32 reassociation only (see above)
        torch.testing.assert_close(
            torch.tensor(got.logprobs), alone.logprobs[0, :n].cpu().float(), atol=1e-4, rtol=1e-4
        )
