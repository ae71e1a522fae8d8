"""The openai backend's native tool calling, against a real HTTP server speaking the Chat Completions API
(`openai_scripted_server.py`: scripted replies, every request body recorded): the tools sent, the calls
parsed, the chat converted to the API's form, malformed arguments reported by the env, server errors,
and requests without tools left as they were."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("openai", reason="the openai backend needs the openai package: pip install openai")

from palaestra.agents import Generation, GenerationRequest, SamplingParams
from palaestra.agents.openai_backend import OpenAIPolicy
from palaestra.tools import ToolCall
from tests.agents.openai_scripted_server import ScriptedChatServer, error_reply, text_reply, tool_reply
from tests.tool_env import TOOLS, LookupEnv

SP = SamplingParams(max_new_tokens=16, temperature=0)


@pytest.fixture
def server():
    with ScriptedChatServer() as server:
        yield server


@pytest.fixture
def env():
    env = LookupEnv()
    yield env
    env.close()


def _generate(server: ScriptedChatServer, request: GenerationRequest, **options) -> Generation:
    policy = OpenAIPolicy("m", base_url=server.url, logprobs=False, **options)

    async def main() -> list[Generation]:
        try:
            return await policy.generate([request])
        finally:
            await policy.close()

    (generation,) = asyncio.run(main())
    return generation


def _assistant(generation: Generation) -> dict:
    """The assistant message of a reply with calls, as the rollout records it (OpenAI form)."""
    return {
        "role": "assistant",
        "content": generation.text,
        "tool_calls": [c.openai() for c in generation.tool_calls],
    }


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


def test_an_episode_by_hand_through_the_env(server, env):
    """What the rollout does: calls -> the env's reply format -> tool messages -> the next request."""
    question, info = env.reset(seed=5)
    first, second = env.asked
    server.replies.append(
        tool_reply(("get", f'{{"key": "{first}"}}', "srv-1"), ("get", f'{{"key": "{second}"}}', "srv-2"))
    )
    chat = [{"role": "system", "content": env.system_prompt}, {"role": "user", "content": question}]
    gen = _generate(server, GenerationRequest(chat, SP, tools=env.tools))
    _, reward, terminated, _, info = env.step(env.format_calls(gen.tool_calls, gen.text))
    assert info["role"] == "tool" and info["format_error"] is None and not terminated and reward == 0.0
    values = [str(env.table[first]), str(env.table[second])]
    assert [m["content"] for m in info["tool_messages"]] == values
    assert [m["tool_call_id"] for m in info["tool_messages"]] == ["call_0", "call_1"], "the env numbers calls"

    chat += [_assistant(gen), *info["tool_messages"]]
    server.replies.append(text_reply(str(env.answer)))
    gen = _generate(server, GenerationRequest(chat, SP, tools=env.tools))
    sent = server.requests[1]["messages"]
    assert sent[:2] == chat[:2]
    assert sent[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "srv-1",
                "type": "function",
                "function": {"name": "get", "arguments": f'{{"key": "{first}"}}'},
            },
            {
                "id": "srv-2",
                "type": "function",
                "function": {"name": "get", "arguments": f'{{"key": "{second}"}}'},
            },
        ],
    }
    assert sent[3:] == [
        {"role": "tool", "tool_call_id": "srv-1", "content": values[0]},
        {"role": "tool", "tool_call_id": "srv-2", "content": values[1]},
    ]
    assert gen.tool_calls == ()
    _, reward, terminated, _, info = env.step(gen.text)
    assert terminated and reward == 1.0 and info["success"]


def test_the_chat_is_converted_to_the_api_form(server):
    chat = [
        {"role": "user", "content": "q"},
        # a call the env refused (format error): it answered with a user message, not a tool result
        {"role": "assistant", "content": "", "tool_calls": [ToolCall("get", {"key": "x"}, "c1").openai()]},
        {"role": "user", "content": "Too many tool calls."},
        # dict arguments and a ToolCall object; extra keys dropped; the tool messages' ids already match
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
        {"role": "tool", "tool_call_id": "c2", "name": "get", "content": "7"},
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
def test_malformed_arguments_are_a_format_error_the_env_reports(server, env, arguments, error):
    question, _ = env.reset(seed=1)
    server.replies.append(tool_reply(("get", arguments, "srv-1")))
    chat = [{"role": "user", "content": question}]
    gen = _generate(server, GenerationRequest(chat, SP, tools=env.tools))
    assert gen.error is None and gen.finish_reason == "stop"
    (call,) = gen.tool_calls
    assert (call.name, call.id, call.arguments) == ("get", "srv-1", arguments), "kept as the server sent them"
    observation, reward, terminated, _, info = env.step(env.format_calls(gen.tool_calls, gen.text))
    assert error in info["format_error"] and error in observation and not terminated and reward == 0.0
    assert info["role"] == "user" and "tool_messages" not in info

    chat += [_assistant(gen), {"role": "user", "content": observation}]
    _generate(server, GenerationRequest(chat, SP, tools=env.tools))
    sent = server.requests[1]["messages"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == arguments, "the model's own text goes back"
    assert (
        sent[2]["role"] == "tool"
        and sent[2]["tool_call_id"] == "srv-1"
        and "not run" in sent[2]["content"].lower()
    )
    assert sent[3] == {"role": "user", "content": observation}


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
