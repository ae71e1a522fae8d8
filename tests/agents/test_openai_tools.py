"""The openai backend's native tool calling, against a real HTTP server speaking the Chat Completions API
(`openai_scripted_server.py`: scripted replies, every request body recorded): the tools sent, the calls
parsed, the chat converted to the API's form, malformed arguments reported by the env, server errors,
and requests without tools left as they were."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("openai", reason="the openai backend needs the openai package: pip install openai")

from palaestra.agents import Generation, GenerationRequest, SamplingParams
from palaestra.agents.openai_backend import OpenAIPolicy
from palaestra.rollout import RolloutConfig, Task, rollout
from palaestra.tools import ToolCall
from tests.agents.openai_scripted_server import ScriptedChatServer, error_reply, text_reply, tool_reply
from tests.tool_env import TOOLS, LookupEnv

SP = SamplingParams(max_new_tokens=16, temperature=0)
LOOKUP = "test/Lookup-v0"  # registered by importing tests.tool_env


@pytest.fixture
def server():
    with ScriptedChatServer() as server:
        yield server


def _generate(server: ScriptedChatServer, request: GenerationRequest, **options) -> Generation:
    policy = OpenAIPolicy("m", base_url=server.url, logprobs=False, **options)

    async def main() -> list[Generation]:
        try:
            return await policy.generate([request])
        finally:
            await policy.close()

    (generation,) = asyncio.run(main())
    return generation


def _policy(server: ScriptedChatServer) -> OpenAIPolicy:
    return OpenAIPolicy("m", base_url=server.url, logprobs=False, max_retries=0)


def _lookup(seed: int) -> LookupEnv:
    """The Lookup env's task for `seed` (keys asked, table, answer), to script the server's replies."""
    env = LookupEnv()
    env.reset(seed=seed)
    env.close()
    return env


def _key(key: str) -> str:
    return json.dumps({"key": key})


def test_tools_are_sent_and_calls_parsed(server):
    server.replies.append(
        tool_reply(("get", '{"key": "alpha"}', "call_a"), ("keys", "", "call_b"), content="Hm.")
    )
    server.replies.append(tool_reply(("keys", "{}", "")))
    question = [{"role": "user", "content": "What is alpha + beta?"}]
    gen = _generate(server, GenerationRequest(question, SP, tools=TOOLS))
    assert gen.tool_calls == (ToolCall("get", {"key": "alpha"}, "call_a"), ToolCall("keys", {}, "call_b"))
    assert (gen.text, gen.finish_reason, gen.error) == ("Hm.", "stop", None)
    body = server.requests[0]
    assert body["tools"] == TOOLS and body["tool_choice"] == "auto" and body["messages"] == question
    gen = _generate(server, GenerationRequest(question, SP, tools=TOOLS))
    assert gen.tool_calls == (ToolCall("keys", {}, "call_0"),) and gen.text == "", "no id, no content"


def test_an_episode_through_the_rollout(server):
    """Calls -> the env (in its own format, with the server's ids) -> tool messages -> the next request."""
    expert = _lookup(seed=5)
    first, second = expert.asked
    server.replies.append(tool_reply(("get", _key(first), "srv-1"), ("get", _key(second), "srv-2")))
    server.replies.append(text_reply(str(expert.answer)))
    (traj,) = rollout(_policy(server), [Task(LOOKUP, seed=5)], RolloutConfig(sampling=SP))
    assert traj.error is None and traj.success and len(traj.turns) == 2
    assert traj.turns[0].info["format_error"] is None and "<tool_call>" in traj.turns[0].action
    first_request, second_request = server.requests
    assert first_request["tools"] == TOOLS and first_request["tool_choice"] == "auto"
    values = [str(expert.table[first]), str(expert.table[second])]
    assert second_request["messages"][:2] == first_request["messages"]
    assert second_request["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "srv-1", "type": "function", "function": {"name": "get", "arguments": _key(first)}},
                {"id": "srv-2", "type": "function", "function": {"name": "get", "arguments": _key(second)}},
            ],
        },
        {"role": "tool", "tool_call_id": "srv-1", "content": values[0]},
        {"role": "tool", "tool_call_id": "srv-2", "content": values[1]},
    ]


def test_the_chat_is_converted_to_the_api_form(server):
    chat = [
        {"role": "user", "content": "q"},
        # a call the env refused (format error): it answered with a user message, not a tool result
        {"role": "assistant", "content": "", "tool_calls": [ToolCall("get", {"key": "x"}, "c1").openai()]},
        {"role": "user", "content": "Too many tool calls."},
        # dict arguments and a ToolCall object; extra keys dropped; results matched by id, else in order
        {
            "role": "assistant",
            "content": "Two calls.",
            "tool_calls": [
                {"id": "c2", "type": "function", "function": {"name": "get", "arguments": {"key": "é"}}},
                ToolCall("keys", {}, "c3"),
            ],
            "reasoning": "dropped",
        },
        {"role": "tool", "tool_call_id": "c3", "name": "keys", "content": "alpha, beta"},
        {"role": "tool", "tool_call_id": "call_0", "name": "get", "content": "7"},  # an id of the env's own
        # a tool result that answers no call (an env that sets role=tool without calls)
        {"role": "tool", "content": "stdout: 4"},
    ]
    _generate(server, GenerationRequest(chat, SP, tools=TOOLS))
    sent = server.requests[0]["messages"]
    not_run = sent[2]["content"]
    assert not_run.startswith("Not run"), not_run
    assert sent == [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get", "arguments": '{"key": "x"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": not_run},
        {"role": "user", "content": "Too many tool calls."},
        {
            "role": "assistant",
            "content": "Two calls.",
            "tool_calls": [
                {"id": "c2", "type": "function", "function": {"name": "get", "arguments": '{"key": "é"}'}},
                {"id": "c3", "type": "function", "function": {"name": "keys", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c3", "content": "alpha, beta"},
        {"role": "tool", "tool_call_id": "c2", "content": "7"},
        {"role": "user", "content": "stdout: 4"},
    ]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ('{"key": "alpha"', "the arguments of get are not valid JSON"),
        ('["alpha"]', 'the "arguments" of get must be a JSON object, got list'),
    ],
)
def test_malformed_arguments_are_a_format_error_the_env_reports(server, arguments, error):
    server.replies.append(tool_reply(("get", arguments, "srv-1")))
    question = [{"role": "user", "content": "What is alpha + beta?"}]
    gen = _generate(server, GenerationRequest(question, SP, tools=TOOLS))
    assert gen.error is None and gen.finish_reason == "stop"
    (call,) = gen.tool_calls
    assert (call.name, call.id, call.arguments) == ("get", "srv-1", arguments), "kept as the server sent them"

    expert = _lookup(seed=2)
    first, second = expert.asked
    server.replies.append(tool_reply(("get", arguments, "srv-1")))
    server.replies.append(tool_reply(("get", _key(first), "srv-2"), ("get", _key(second), "srv-3")))
    server.replies.append(text_reply(str(expert.answer)))
    (traj,) = rollout(_policy(server), [Task(LOOKUP, seed=2)], RolloutConfig(sampling=SP))
    assert traj.error is None and traj.success and len(traj.turns) == 3, "the episode goes on"
    refused = traj.turns[0]
    assert error in refused.info["format_error"] and error in refused.observation and refused.reward == 0.0
    sent = server.requests[2]["messages"]  # the request after the refused call
    assert sent[-3]["tool_calls"][0]["function"]["arguments"] == arguments, "the model's own text goes back"
    assert sent[-2]["tool_call_id"] == "srv-1" and sent[-2]["content"].startswith("Not run")
    assert sent[-1] == {"role": "user", "content": refused.observation}


def test_server_errors_are_error_generations(server):
    request = GenerationRequest([{"role": "user", "content": "q"}], SP, tools=TOOLS)
    message = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
    server.replies.append(error_reply(400, message))
    gen = _generate(server, request, max_retries=2)
    assert gen.finish_reason == "error" and message in gen.error and gen.tool_calls == ()
    assert len(server.requests) == 1, "a 400 is not retried"

    server.replies += [error_reply(500, "boom"), error_reply(500, "boom")]
    gen = _generate(server, request, max_retries=1)
    assert gen.finish_reason == "error" and "500" in gen.error and gen.tool_calls == ()

    server.replies += [error_reply(503, "busy"), tool_reply(("keys", "{}", "c1"))]
    gen = _generate(server, request, max_retries=1)
    assert gen.error is None and gen.tool_calls == (ToolCall("keys", {}, "c1"),), "retried, then parsed"


@pytest.mark.parametrize("tools", [None, []])
def test_a_request_without_tools_is_unchanged(server, tools):
    chat = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<python>print(2 + 2)</python>"},
        {"role": "tool", "content": "stdout: 4"},  # Code-PythonMath-v0's tool turns: role tool, no call id
    ]
    gen = _generate(server, GenerationRequest(chat, SP, tools=tools))
    (body,) = server.requests
    assert body["messages"] == chat
    assert set(body) == {"model", "messages", "max_tokens", "temperature", "top_p"}
    assert (gen.text, gen.tool_calls, gen.error) == ("ok", (), None)
