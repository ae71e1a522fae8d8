"""The `ToolEnv` contract through gymnasium's API: calls run and come back as tool messages, a reply with no
call is the final answer, and every malformed reply is a format error the agent sees, never an exception."""

from __future__ import annotations

import pytest

from palaestra.tools import ToolCall
from tests.tool_env import LookupEnv


@pytest.fixture
def env():
    env = LookupEnv()
    yield env
    env.close()


def test_the_expert_calls_tools_then_answers(env):
    observation, info = env.reset(seed=3)
    assert observation.startswith("What is") and env.tools[0]["function"]["name"] == "get"
    observation, reward, terminated, _, info = env.step(info["expert_action"])
    assert info["role"] == "tool" and not terminated and reward == 0 and info["format_error"] is None
    values = [str(env.table[k]) for k in env.asked]
    assert [m["content"] for m in info["tool_messages"]] == values
    assert [m["tool_call_id"] for m in info["tool_messages"]] == ["call_0", "call_1"]
    assert observation == f"[get] {values[0]}\n\n[get] {values[1]}"
    _, reward, terminated, _, info = env.step(info["expert_action"])
    assert terminated and reward == 1.0 and info["success"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            '<tool_call>{"name": "get", "arguments": {"key": 1}}</tool_call>',
            "invalid arguments for get: 1 is not of type 'string'",
        ),
        ('<tool_call>{"name": "delete", "arguments": {}}</tool_call>', "unknown tool 'delete'"),
        ("<tool_call>{oops}</tool_call>", "invalid JSON"),
    ],
)
def test_malformed_calls_are_format_errors_the_agent_sees(env, reply, expected):
    env.reset(seed=0)
    observation, reward, terminated, _, info = env.step(reply)
    assert expected in info["format_error"] and expected in observation
    assert not terminated and reward == 0


def test_a_tool_error_is_the_calls_result_and_valid_calls_still_run(env):
    env.reset(seed=0)
    reply = env.format_calls([ToolCall("get", {"key": "omega"}), ToolCall("keys")])
    _, _, _, _, info = env.step(reply)
    assert info["format_error"] is None
    assert [m["content"] for m in info["tool_messages"]] == [
        "Error: no key 'omega'",
        "alpha, beta, gamma, delta",
    ]


def test_long_results_are_cut_and_too_many_calls_refused():
    env = LookupEnv(max_result_chars=5, max_calls_per_turn=1)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.format_calls([ToolCall("keys")]))
    assert info["tool_messages"][0]["content"] == "alpha\n[... 20 more characters not shown]"
    _, _, _, _, info = env.step(env.format_calls([ToolCall("keys"), ToolCall("keys")]))
    assert "at most 1" in info["format_error"]


def test_expert_replies_carry_no_call_ids_and_long_tool_errors_are_cut(env):
    """Demos teach the format models write (no ids); a tool's error obeys max_result_chars too."""
    _, info = env.reset(seed=0)
    assert '"id"' not in info["expert_action"]
    short = LookupEnv(max_result_chars=12)
    short.reset(seed=0)
    _, _, _, _, info = short.step(short.format_calls([ToolCall("get", {"key": "x" * 50})]))
    assert info["tool_messages"][0]["content"].startswith("Error: no ke\n[... ")
