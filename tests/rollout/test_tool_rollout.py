"""Tool envs through the rollout: declarations reach the model (natively or in the system message), tool
results come back as `tool` messages recorded token-exact with the loss mask off, servers' structured calls
reach the env, and malformed calls are format errors the episode survives."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Sequence

import pytest

import tests.tool_env  # noqa: F401  (registers test/Lookup-v0)
from palaestra.agents.base import Generation, GenerationRequest
from palaestra.rollout import RolloutConfig, Task, rollout
from palaestra.rollout.chat import TokenChat
from palaestra.tools import ToolCall, get_tool_parser
from tests.tool_env import TOOLS

LOOKUP = "test/Lookup-v0"

# A ChatML template written for these tests that renders `tools=` in the system turn and tool results as
# user turns in <tool_response> tags (the way several tool-calling model families do).
NATIVE_TOOLS_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\\n' }}"
    "{% if messages[0].role == 'system' %}{{ messages[0].content + '\\n\\n' }}{% endif %}"
    "{{ '<tools>' }}{% for tool in tools %}{{ '\\n' + (tool | tojson) }}{% endfor %}{{ '\\n</tools><|im_end|>\\n' }}"
    "{% elif messages[0].role == 'system' %}{{ '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{% endif %}"
    "{% for m in messages %}"
    "{% if m.role == 'tool' %}{{ '<|im_start|>user\\n<tool_response>\\n' + m.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{% elif m.role != 'system' %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# ChatML that knows only system, user and assistant (jinja raises for anything else)
NO_TOOL_ROLE_TEMPLATE = (
    "{% for m in messages %}{% if m.role not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + m.role) }}{% endif %}"
    "{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class TokenExpert:
    """Token-level policy replying with the env's expert action (tokenized, closed by EOS); keeps every request."""

    name = "token-expert"

    def __init__(self, tokenizer, replies: Sequence[str] | None = None):
        self.tokenizer = tokenizer
        self.replies = list(replies or [])
        self.requests: list[GenerationRequest] = []

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for request in requests:
            self.requests.append(request)
            text = self.replies.pop(0) if self.replies else str(request.info["expert_action"])
            ids = [*self.tokenizer(text, add_special_tokens=False)["input_ids"], self.tokenizer.eos_token_id]
            out.append(Generation(text, tuple(ids), tuple(-0.1 for _ in ids)))
        return out

    async def close(self) -> None:
        pass


def _tokenizer_with(tokenizer, template: str | None):
    tok = copy.deepcopy(tokenizer)  # the session's tokenizer stays as it is
    if template is not None:
        tok.chat_template = template
    return tok


def _check_token_exact(traj, chat: TokenChat, tools) -> None:
    traj.check()
    assert traj.success and traj.error is None
    tool_messages = [m for m in traj.messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == [
        m["content"] for m in traj.turns[0].info["tool_messages"]
    ]
    # trained tokens are exactly the replies; tool results and template text are not trained on
    assert sum(traj.loss_mask) == sum(end - start for start, end in (t.token_span for t in traj.turns))
    end = traj.turns[0].token_span[1]
    observation_ids = traj.token_ids[end : traj.turns[1].token_span[0]]
    assert traj.loss_mask[end : traj.turns[1].token_span[0]] == [0] * len(observation_ids)
    assert all(tool["content"] in chat.tokenizer.decode(observation_ids) for tool in tool_messages)
    # the sequence is the template's rendering of the conversation (up to the newline closing the last reply)
    decoded, rendered = chat.tokenizer.decode(traj.token_ids), chat.render(traj.messages, tools)
    assert rendered.startswith(decoded) and rendered[len(decoded) :] == "\n"


def test_a_template_without_tools_gets_them_in_the_system_message(smollm2_tokenizer):
    chat = TokenChat(smollm2_tokenizer)
    assert not chat.renders_tools and chat.tool_role
    policy = TokenExpert(smollm2_tokenizer)
    (traj,) = rollout(policy, [Task(LOOKUP, seed=1)])
    system = traj.messages[0]
    assert system["role"] == "system" and system["content"].startswith(
        "Answer with a number only.\n\n# Tools"
    )
    assert json.dumps(TOOLS[0]) in system["content"]
    _check_token_exact(traj, chat, TOOLS)
    assert policy.requests[0].tools == tuple(TOOLS)  # text backends get them too


def test_a_template_with_tools_renders_them_natively(smollm2_tokenizer):
    tok = _tokenizer_with(smollm2_tokenizer, NATIVE_TOOLS_TEMPLATE)
    chat = TokenChat(tok)
    assert chat.renders_tools
    (traj,) = rollout(TokenExpert(tok), [Task(LOOKUP, seed=2)])
    assert traj.messages[0] == {"role": "system", "content": "Answer with a number only."}  # untouched
    prompt = tok.decode(traj.token_ids[: traj.prompt_length])
    assert "<tools>" in prompt and '"name": "get"' in prompt and "# Tools" not in prompt
    assert "<tool_response>" in tok.decode(traj.token_ids)
    _check_token_exact(traj, chat, TOOLS)


def test_a_template_without_a_tool_role_gets_results_as_user_turns(smollm2_tokenizer):
    tok = _tokenizer_with(smollm2_tokenizer, NO_TOOL_ROLE_TEMPLATE)
    chat = TokenChat(tok)
    assert not chat.tool_role and not chat.renders_tools
    (traj,) = rollout(TokenExpert(tok), [Task(LOOKUP, seed=3)])
    text = tok.decode(traj.token_ids)
    assert "<|im_start|>user\n<tool_response>\n" in text and "<|im_start|>tool" not in text
    _check_token_exact(traj, chat, TOOLS)


def test_malformed_calls_are_format_errors_and_the_episode_goes_on(smollm2_tokenizer):
    policy = TokenExpert(
        smollm2_tokenizer,
        replies=["<tool_call>{broken</tool_call>", '<tool_call>{"name": "nope"}</tool_call>'],
    )
    (traj,) = rollout(policy, [Task(LOOKUP, seed=4)])
    assert traj.error is None and traj.success and traj.num_turns == 3  # two bad calls, then the answer
    assert "invalid JSON" in traj.turns[0].info["format_error"]
    assert "unknown tool 'nope'" in traj.turns[1].info["format_error"]
    assert traj.messages[3]["role"] == "user"  # an unreadable call is answered as a user turn
    assert traj.messages[5]["role"] == "tool"


class StructuredCalls:
    """A text backend whose server returns structured calls (as the openai backend does), with its own ids."""

    name = "structured"
    tokenizer = None

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for request in requests:
            self.requests.append(request)
            expert = get_tool_parser("auto").parse(str(request.info["expert_action"]))
            calls = tuple(ToolCall(c.name, c.arguments, f"srv-{i}") for i, c in enumerate(expert.calls))
            out.append(Generation(expert.content, tool_calls=calls))
        return out

    async def close(self) -> None:
        pass


def test_structured_calls_reach_the_env_and_results_quote_their_ids():
    policy = StructuredCalls()
    (traj,) = rollout(policy, [Task(LOOKUP, seed=5)], RolloutConfig())
    assert traj.success and traj.error is None
    assistant = traj.messages[2]
    assert [c["id"] for c in assistant["tool_calls"]] == ["srv-0", "srv-1"]
    assert assistant["tool_calls"][0]["function"]["name"] == "get" and assistant["content"] == ""
    assert [m["tool_call_id"] for m in traj.messages[3:5]] == ["srv-0", "srv-1"]
    assert policy.requests[1].messages[-1]["role"] == "tool" and policy.requests[0].tools == tuple(TOOLS)
    assert "<tool_call>" in traj.turns[0].action  # what the env received, in its own format


def test_envs_without_tools_send_no_tools(smollm2_tokenizer):
    policy = TokenExpert(smollm2_tokenizer)
    (traj,) = asyncio.run(_one(policy, Task("palaestra/Math-ArithEasy-v0", seed=0)))
    assert traj.success and all(r.tools is None for r in policy.requests)
    assert "# Tools" not in smollm2_tokenizer.decode(traj.token_ids)


async def _one(policy, task):
    from palaestra.rollout import RolloutRunner

    runner = RolloutRunner(policy)
    try:
        return await runner.run([task])
    finally:
        runner.close()


@pytest.mark.parametrize("seed", range(3))
def test_expert_rollouts_are_deterministic(smollm2_tokenizer, seed):
    first = rollout(TokenExpert(smollm2_tokenizer), [Task(LOOKUP, seed=seed)])[0]
    second = rollout(TokenExpert(smollm2_tokenizer), [Task(LOOKUP, seed=seed)])[0]
    assert first.token_ids == second.token_ids and first.messages == second.messages
