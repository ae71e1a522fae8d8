"""The openai backend under faults: 429 storms, 5xx, slow answers, a server killed mid-rollout.

A small real HTTP server (`openai_fault_server.py`, a separate process) injects the faults; the happy
path against a real engine is in `test_openai_vllm_server.py`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("openai", reason="the openai backend needs the openai package: pip install openai")

from palaestra.agents import GenerationRequest, SamplingParams
from palaestra.agents.openai_backend import OpenAIPolicy
from palaestra.agents.spec import make_policy
from palaestra.rollout import RolloutConfig, Task, rollout

SERVER = Path(__file__).with_name("openai_fault_server.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultServer:
    def __init__(self, tmp_path: Path, **flags: float):
        self.port = _free_port()
        self.log = tmp_path / f"requests-{self.port}.jsonl"
        argv = [sys.executable, str(SERVER), "--port", str(self.port), "--log", str(self.log)]
        for key, value in flags.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def requests(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def server_factory(tmp_path):
    servers: list[FaultServer] = []

    def start(**flags: float) -> FaultServer:
        servers.append(FaultServer(tmp_path, **flags))
        return servers[-1]

    yield start
    for s in servers:
        s.kill()


def _ask(policy, n: int, **sampling) -> list:
    sp = SamplingParams(max_new_tokens=8, temperature=0, **sampling)
    reqs = [GenerationRequest([{"role": "user", "content": f"q{i}"}], sp) for i in range(n)]

    async def main():
        try:
            return await policy.generate(reqs)
        finally:
            await policy.close()

    return asyncio.run(main())


def test_429_storm_is_retried_and_usage_counted(server_factory):
    server = server_factory(fail_first=6, status=429)
    policy = OpenAIPolicy("m", base_url=server.url, max_retries=6, max_concurrency=4)
    outs = _ask(policy, 4)
    assert [g.text for g in outs] == [f"echo: q{i}" for i in range(4)]
    assert all(g.finish_reason == "stop" for g in outs)
    u = policy.usage
    assert (u.requests, u.failed, u.http_errors) == (4, 0, 6)
    assert (u.prompt_tokens, u.completion_tokens) == (28, 12)
    assert len(server.requests()) == 10


def test_5xx_past_the_retries_is_an_error_generation(server_factory):
    server = server_factory(fail_first=100, status=503)
    policy = OpenAIPolicy("m", base_url=server.url, max_retries=1)
    (out,) = _ask(policy, 1)
    assert out.finish_reason == "error" and "503" in out.error
    assert policy.usage.failed == 1 and len(server.requests()) == 2


def test_slow_answers_time_out(server_factory):
    server = server_factory(delay=3.0)
    policy = OpenAIPolicy("m", base_url=server.url, max_retries=0, timeout_s=0.3)
    t0 = time.perf_counter()
    (out,) = _ask(policy, 1)
    assert out.finish_reason == "error" and "Timeout" in out.error
    assert time.perf_counter() - t0 < 2.5


def test_concurrency_is_bounded(server_factory):
    server = server_factory(delay=0.3)
    policy = OpenAIPolicy("m", base_url=server.url, max_concurrency=2)
    t0 = time.perf_counter()
    outs = _ask(policy, 6)
    elapsed = time.perf_counter() - t0
    assert all(g.finish_reason == "stop" for g in outs)
    assert elapsed >= 0.9, f"6 requests of 0.3 s two at a time took only {elapsed:.2f} s"


def test_request_body_image_parts_and_key(server_factory, monkeypatch):
    server = server_factory()
    monkeypatch.setenv("PALAESTRA_TEST_KEY", "sk-secret-123")
    policy = make_policy(
        "openai:some-model", base_url=server.url, api_key_env="PALAESTRA_TEST_KEY", logprobs=False
    )
    assert "sk-secret" not in repr(policy)
    parts = [
        {"type": "text", "text": "click the button"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    sp = SamplingParams(max_new_tokens=5, temperature=0.5, top_p=0.9, top_k=7, stop=("\n",), seed=3)
    (out,) = asyncio.run(policy.generate([GenerationRequest([{"role": "user", "content": parts}], sp)]))
    assert out.text == "echo: click the button"
    (req,) = server.requests()
    body = req["body"]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-secret-123"
    assert body["messages"] == [{"role": "user", "content": parts}]
    assert body["model"] == "some-model" and body["max_tokens"] == 5 and body["top_k"] == 7
    assert body["stop"] == ["\n"] and body["seed"] == 3 and body["top_p"] == 0.9
    assert "logprobs" not in body and "return_token_ids" not in body


def test_spec_errors(monkeypatch):
    monkeypatch.delenv("PALAESTRA_MISSING_KEY", raising=False)
    with pytest.raises(ValueError, match="needs base_url"):
        make_policy("openai:m")
    with pytest.raises(ValueError, match="PALAESTRA_MISSING_KEY"):
        make_policy("openai:m", base_url="http://127.0.0.1:1/v1", api_key_env="PALAESTRA_MISSING_KEY")
    with pytest.raises(ValueError, match="does not take"):
        make_policy("openai:m", base_url="http://127.0.0.1:1/v1", temprature=1)


def test_server_killed_mid_rollout_records_failed_episodes(server_factory):
    server = server_factory(delay=0.15)
    policy = OpenAIPolicy("m", base_url=server.url, max_retries=1, max_concurrency=2, timeout_s=5)
    tasks = [Task("palaestra/Math-ArithRetry-v0", seed=s) for s in range(8)]
    cfg = RolloutConfig(max_concurrency=2, sampling=SamplingParams(max_new_tokens=8, temperature=0))
    done: list = []

    def on_end(traj) -> None:
        done.append(traj)
        if len(done) == 2:
            server.kill()

    trajectories = rollout(policy, tasks, cfg, on_episode_end=on_end)
    assert len(trajectories) == 8, "no episode is lost"
    ok = [t for t in trajectories if t.error is None]
    failed = [t for t in trajectories if t.error is not None]
    assert len(ok) >= 2 and failed, (len(ok), [t.error for t in failed])
    assert all("generation failed" in t.error and not t.success for t in failed)
    assert all(len(t.turns) == 3 for t in ok), "the wrong echo answers use every attempt"
    assert policy.usage.failed >= len(failed)
