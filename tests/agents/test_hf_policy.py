"""The hf backend: batching, left padding, exact logprobs, finish reasons, seeds, errors."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import torch

from palaestra.agents import GenerationRequest, SamplingParams

MESSAGES = [[{"role": "user", "content": "count " * (i + 1)}] for i in range(6)]


def _run(policy, requests):
    async def main():
        return [r[0] for r in await asyncio.gather(*(policy.generate([q]) for q in requests))]

    return asyncio.run(main())


def _prompt_ids(tok, messages):
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_concurrent_requests_share_one_generate_call(tiny_policy):
    greedy = SamplingParams(max_new_tokens=5, temperature=0)
    other = SamplingParams(max_new_tokens=7, temperature=0)
    outs = _run(tiny_policy, [GenerationRequest(m, greedy) for m in MESSAGES])
    assert tiny_policy.generate_calls == 1 and len(outs) == 6
    mixed = _run(
        tiny_policy, [GenerationRequest(m, greedy if i % 2 else other) for i, m in enumerate(MESSAGES)]
    )
    assert tiny_policy.generate_calls == 2, "rows with different sampling params share the batch"
    assert [len(g.token_ids) for g in mixed] == [7, 5] * 3


def test_batch_size_limit_splits_batches(tiny_model, smollm2_tokenizer):
    from palaestra.agents.hf import HFPolicy

    policy = HFPolicy(tiny_model, smollm2_tokenizer, max_batch_size=4)
    _run(policy, [GenerationRequest(m, SamplingParams(max_new_tokens=3, temperature=0)) for m in MESSAGES])
    assert policy.generate_calls == 2
    asyncio.run(policy.close())


def test_batched_greedy_equals_one_by_one(tiny_policy):
    sp = SamplingParams(max_new_tokens=10, temperature=0)
    batched = _run(tiny_policy, [GenerationRequest(m, sp) for m in MESSAGES])
    singles = [_run(tiny_policy, [GenerationRequest(m, sp)])[0] for m in MESSAGES]
    assert [b.token_ids for b in batched] == [s.token_ids for s in singles]


@pytest.mark.parametrize("temperature", [0.0, 1.0, 0.7])
def test_logprobs_match_a_plain_forward_pass(tiny_policy, tiny_model, smollm2_tokenizer, temperature):
    sp = SamplingParams(max_new_tokens=8, temperature=temperature, seed=1)
    outs = _run(tiny_policy, [GenerationRequest(m, sp) for m in MESSAGES[:3]])
    for messages, gen in zip(MESSAGES[:3], outs, strict=True):
        prompt = _prompt_ids(smollm2_tokenizer, messages)
        full = torch.tensor([prompt + list(gen.token_ids)])
        with torch.no_grad():
            logits = tiny_model(full).logits[0, len(prompt) - 1 : -1].float() / (temperature or 1.0)
        expected = torch.log_softmax(logits, -1).gather(-1, full[0, len(prompt) :, None]).squeeze(-1)
        # batched vs single float32 passes: a few ulps of the logits (~1e-6); 1e-4 is a 100x margin
        assert torch.allclose(torch.tensor(gen.logprobs), expected, atol=1e-4)


def test_prompt_token_ids_are_used_verbatim(tiny_policy, smollm2_tokenizer):
    sp = SamplingParams(max_new_tokens=6, temperature=0)
    ids = _prompt_ids(smollm2_tokenizer, MESSAGES[2])
    via_ids = _run(tiny_policy, [GenerationRequest(MESSAGES[0], sp, prompt_token_ids=ids)])[0]
    via_messages = _run(tiny_policy, [GenerationRequest(MESSAGES[2], sp)])[0]
    assert via_ids.token_ids == via_messages.token_ids


def test_tools_in_a_request_change_nothing(tiny_policy, smollm2_tokenizer):
    """Token-level backends find the tools rendered in the prompt ids by the rollout; `tools` is ignored."""
    from palaestra.tools import function_tool

    tools = [function_tool("get", "A value.", {"type": "object", "properties": {"key": {"type": "string"}}})]
    sp = SamplingParams(max_new_tokens=6, temperature=0)
    ids = _prompt_ids(smollm2_tokenizer, MESSAGES[1])
    plain = [GenerationRequest(MESSAGES[1], sp), GenerationRequest(MESSAGES[0], sp, prompt_token_ids=ids)]
    expected = _run(tiny_policy, plain)
    outs = _run(tiny_policy, [dataclasses.replace(r, tools=tools) for r in plain])
    assert [g.token_ids for g in outs] == [g.token_ids for g in expected] and len(outs[0].token_ids) > 0
    assert all(g.error is None and g.tool_calls == () for g in outs)


def test_finish_reasons_and_eos_kept(tiny_model, smollm2_tokenizer):
    from palaestra.agents.hf import HFPolicy

    eos = smollm2_tokenizer.eos_token_id
    # make the model always predict EOS after a few tokens: bias the output layer
    model = type(tiny_model)(tiny_model.config)
    model.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        model.lm_head.weight[eos] = 1.0
    policy = HFPolicy(model.eval(), smollm2_tokenizer)
    out = _run(policy, [GenerationRequest(MESSAGES[0], SamplingParams(max_new_tokens=5, temperature=0))])[0]
    assert out.finish_reason == "stop" and out.token_ids[-1] == eos and out.text == ""
    normal = HFPolicy(tiny_model, smollm2_tokenizer)
    out = _run(normal, [GenerationRequest(MESSAGES[0], SamplingParams(max_new_tokens=5, temperature=0))])[0]
    assert out.finish_reason == "length" and len(out.token_ids) == 5 and eos not in out.token_ids


def test_stop_strings(tiny_policy, smollm2_tokenizer):
    sp = SamplingParams(max_new_tokens=12, temperature=1.0, seed=5)
    free = _run(tiny_policy, [GenerationRequest(MESSAGES[1], sp)])[0]
    pieces = [smollm2_tokenizer.decode([t]) for t in free.token_ids]
    cut = next(i for i in range(2, len(pieces)) if pieces[i].strip() and pieces[i] not in "".join(pieces[:i]))
    stop = pieces[cut]
    stopped = _run(
        tiny_policy, [GenerationRequest(MESSAGES[1], SamplingParams(12, 1.0, seed=5, stop=(stop,)))]
    )[0]
    assert stopped.finish_reason == "stop"
    assert stopped.token_ids == free.token_ids[: cut + 1], "generation ends right after the stop string"
    assert stopped.text.endswith(stop)


def test_seeded_sampling_is_reproducible(tiny_policy):
    sp = SamplingParams(max_new_tokens=8, temperature=1.0, seed=11)
    a = _run(tiny_policy, [GenerationRequest(MESSAGES[0], sp)])[0]
    torch.manual_seed(123)  # global RNG does not matter
    b = _run(tiny_policy, [GenerationRequest(MESSAGES[0], sp)])[0]
    c = _run(
        tiny_policy,
        [GenerationRequest(MESSAGES[0], SamplingParams(max_new_tokens=8, temperature=1.0, seed=12))],
    )[0]
    assert a.token_ids == b.token_ids and a.token_ids != c.token_ids
    state = torch.get_rng_state()
    _run(tiny_policy, [GenerationRequest(MESSAGES[0], sp)])
    assert torch.equal(state, torch.get_rng_state()), "generation leaves the global RNG alone"


def test_training_mode_is_restored(tiny_policy, tiny_model):
    tiny_model.train()
    _run(tiny_policy, [GenerationRequest(MESSAGES[0], SamplingParams(max_new_tokens=2, temperature=0))])
    assert tiny_model.training
    tiny_model.eval()


def test_generate_failure_reaches_every_waiter(tiny_policy, monkeypatch):
    def boom(version):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(tiny_policy.engine, "step", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        _run(tiny_policy, [GenerationRequest(m, SamplingParams(max_new_tokens=2)) for m in MESSAGES])


def test_sampling_params_are_validated():
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0)
