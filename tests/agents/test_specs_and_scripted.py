"""Agent specs, model loading paths, and the scripted policies."""

from __future__ import annotations

import asyncio

import pytest

from palaestra.agents import GenerationRequest, Policy, SamplingParams
from palaestra.agents.spec import make_policy


def _one(policy, request):
    return asyncio.run(policy.generate([request]))[0]


def test_oracle_replies_with_the_expert_action(smollm2_tokenizer):
    from palaestra.agents.scripted import OraclePolicy

    oracle = make_policy("scripted:oracle")
    assert isinstance(oracle, Policy) and oracle.tokenizer is None
    assert _one(oracle, GenerationRequest([], info={"expert_action": "\\boxed{4}"})).text == "\\boxed{4}"
    missing = _one(oracle, GenerationRequest([]))
    assert missing.finish_reason == "error" and "expert_action" in missing.error
    with_tokens = _one(
        OraclePolicy(tokenizer=smollm2_tokenizer), GenerationRequest([], info={"expert_action": "4"})
    )
    assert with_tokens.token_ids[-1] == smollm2_tokenizer.eos_token_id
    assert smollm2_tokenizer.decode(with_tokens.token_ids[:-1]) == "4"


def test_random_policy_is_reproducible_and_varied():
    req = [GenerationRequest([{"role": "user", "content": "x"}], SamplingParams(seed=s)) for s in range(20)]
    a = asyncio.run(make_policy("scripted:random", seed=1).generate(req))
    b = asyncio.run(make_policy("scripted:random", seed=1).generate(req))
    assert [g.text for g in a] == [g.text for g in b]
    assert len({g.text for g in a}) > 10
    assert all(any(ch.isdigit() for ch in g.text) for g in a)


@pytest.mark.parametrize("spec", ["scripted:oracle", "scripted:random", "scripted:random-legal"])
def test_scripted_policies_ignore_tools(spec):
    from palaestra.tools import function_tool

    tools = [function_tool("get", "A value.", {"type": "object", "properties": {"key": {"type": "string"}}})]
    chat = [{"role": "user", "content": "x"}]
    info = {"expert_action": '<tool_call>{"name": "get", "arguments": {"key": "a"}}</tool_call>'}
    with_tools = _one(
        make_policy(spec), GenerationRequest(chat, SamplingParams(seed=3), info=info, tools=tools)
    )
    without = _one(make_policy(spec), GenerationRequest(chat, SamplingParams(seed=3), info=info))
    assert with_tools == without and with_tools.error is None and with_tools.tool_calls == ()


def test_spec_errors():
    with pytest.raises(ValueError, match="BACKEND:TARGET"):
        make_policy("smollm2")
    with pytest.raises(ValueError, match="available: scripted, hf"):
        make_policy("magic:model")
    with pytest.raises(ValueError, match="does not take"):
        make_policy("vllm:/some/folder", temprature=1.0)
    with pytest.raises(ValueError, match="unknown scripted agent"):
        make_policy("scripted:genius")
    with pytest.raises(ValueError, match="does not take"):
        make_policy("scripted:oracle", temperature=1)
    with pytest.raises(ValueError, match="does not exist"):
        make_policy("hf:/no/such/model")


def test_local_hf_folder_loads_offline(tmp_path, tiny_model, smollm2_tokenizer, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny_model.save_pretrained(tmp_path / "m")
    smollm2_tokenizer.save_pretrained(tmp_path / "m")
    policy = make_policy(f"hf:{tmp_path / 'm'}", max_batch_size=2)
    assert policy.name == f"hf:{tmp_path / 'm'}" and policy.tokenizer.chat_template
    ref = asyncio.run(
        make_policy("hf:tiny-random").generate(
            [
                GenerationRequest(
                    [{"role": "user", "content": "hi"}], SamplingParams(max_new_tokens=4, temperature=0)
                )
            ]
        )
    )[0]
    out = _one(
        policy,
        GenerationRequest(
            [{"role": "user", "content": "hi"}], SamplingParams(max_new_tokens=4, temperature=0)
        ),
    )
    assert out.token_ids == ref.token_ids, "tiny-random is the saved model: same weights, same greedy reply"


@pytest.mark.slow
def test_embedded_smollm2_answers_and_exports(tmp_path):
    from palaestra.agents.models import load_model

    policy = make_policy("hf:smollm2-135m")
    out = _one(
        policy,
        GenerationRequest(
            [{"role": "user", "content": "What is 2 + 3? Answer with a number."}],
            SamplingParams(max_new_tokens=24, temperature=0),
        ),
    )
    assert "5" in out.text and out.finish_reason == "stop"
    assert len(out.logprobs) == len(out.token_ids) and all(lp <= 0 for lp in out.logprobs)
    # the dequantized GGUF model can be saved and reloaded as an ordinary HF folder
    policy.model.save_pretrained(tmp_path / "smol")
    reloaded = load_model(str(tmp_path / "smol"))
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in policy.model.parameters())
