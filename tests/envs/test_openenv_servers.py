"""Other OpenEnv servers in palaestra: RemoteEnv's adapter (`OpenEnvWire`) against real servers built
here with openenv-core's `create_app`: a text env and a tool-call (MCP) env."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

pytest.importorskip("openenv.core", reason="the serve extra (openenv-core) is not installed")

from fastmcp import FastMCP
from openenv.core.env_server import create_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.mcp_environment import MCPEnvironment
from openenv.core.env_server.mcp_types import CallToolAction, CallToolObservation
from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field

from palaestra.agents.base import Generation, GenerationRequest
from palaestra.envs.remote import RemoteEnv, RemoteEnvError
from palaestra.evaluation import evaluate
from palaestra.rollout import RolloutConfig, Task, rollout
from palaestra.serving import EnvServer


class GuessAction(Action):
    guess: str = Field(description="A number, as text.")


class GuessObservation(Observation):
    message: str = ""
    attempts: int = 0


class GuessEnv(Environment[GuessAction, GuessObservation, State]):
    """Guess a number in 1..10 (drawn from the seed); reward 1 for the right one."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self):
        super().__init__()
        self._state = State()
        self.secret = 0

    def reset(self, seed=None, episode_id=None, **kwargs):
        self.secret = (seed or 0) % 10 + 1
        self._state = State(episode_id=episode_id, step_count=0)
        return GuessObservation(message="Guess my number between 1 and 10.")

    def step(self, action, timeout_s=None, **kwargs):
        self._state.step_count += 1
        value = action.guess.strip()
        if value == str(self.secret):
            return GuessObservation(message="Right!", done=True, reward=1.0, attempts=self._state.step_count)
        hint = "higher" if value.isdigit() and int(value) < self.secret else "lower"
        return GuessObservation(message=f"No, {hint}.", reward=0.0, attempts=self._state.step_count)

    @property
    def state(self):
        return self._state


class CalculatorEnv(MCPEnvironment):
    """A tool env: one MCP tool, `add`."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self):
        mcp = FastMCP("calculator")

        @mcp.tool
        def add(a: int, b: int) -> int:
            """Add two integers."""
            return a + b

        super().__init__(mcp)
        self._state = State()

    def reset(self, seed=None, episode_id=None, **kwargs):
        self._state = State(episode_id=episode_id, step_count=0)
        return Observation(metadata={"task": "add numbers"})

    def _step_impl(self, action, timeout_s=None, **kwargs):
        return Observation(done=True, reward=0.0)

    @property
    def state(self):
        return self._state


class CountingPolicy:
    """Guesses 1, 2, 3, ... (the n-th reply is n)."""

    name = "test:counting"
    tokenizer = None

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        turns = [sum(m["role"] == "assistant" for m in r.messages) for r in requests]
        return [Generation(text=str(n + 1), finish_reason="stop") for n in turns]

    async def close(self) -> None:
        pass


class AddingPolicy(CountingPolicy):
    """Calls the `add` tool with its turn number."""

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        turns = [sum(m["role"] == "assistant" for m in r.messages) for r in requests]
        call = '<tool_call>{{"name": "add", "arguments": {{"a": {n}, "b": 10}}}}</tool_call>'
        return [Generation(text=call.format(n=n), finish_reason="stop") for n in turns]


@pytest.fixture(scope="module")
def guess_server():
    app = create_app(GuessEnv, GuessAction, GuessObservation, max_concurrent_envs=8)
    with EnvServer(app) as server:
        yield server


@pytest.fixture(scope="module")
def calculator_server():
    app = create_app(CalculatorEnv, CallToolAction, CallToolObservation, max_concurrent_envs=8)
    with EnvServer(app) as server:
        yield server


def test_a_text_openenv_env_is_evaluated_like_a_palaestra_env(guess_server, tmp_path):
    result = evaluate(
        CountingPolicy(), "openenv/guess", episodes=4, seed=0, server=guess_server.url, out_dir=tmp_path
    )
    assert result.summary.success_rate == 1.0
    assert [t.num_turns for t in result.trajectories] == [1, 2, 3, 4]  # seed s: the secret is s + 1
    first = result.trajectories[1]
    assert first.messages[0] == {"role": "user", "content": "Guess my number between 1 and 10."}
    assert [t.observation for t in first.turns] == ["No, higher.", "Right!"]
    assert first.turns[-1].reward == 1.0 and first.turns[-1].info["observation"]["attempts"] == 2
    assert json.loads((tmp_path / "results.json").read_text())["server"] == guess_server.url


def test_the_adapter_options_name_the_fields(guess_server):
    env = RemoteEnv(guess_server.url, "openenv/guess", env_kwargs={"system_prompt": "Play."})
    observation, _ = env.reset(seed=2)
    assert (observation, env.system_prompt) == ("Guess my number between 1 and 10.", "Play.")
    assert env.step("3")[:3] == ("Right!", 1.0, True)
    env.close()
    with pytest.raises(RemoteEnvError, match=r"adapter's options action_field, .* not size"):
        RemoteEnv(guess_server.url, "openenv/guess", env_kwargs={"size": 3}).reset(seed=0)


def test_a_tool_call_openenv_env_maps_replies_to_tool_calls(calculator_server):
    env = RemoteEnv(calculator_server.url, "openenv/calculator")
    _, info = env.reset(seed=0)
    assert [t["name"] for t in info["tools"]] == ["add"] and env.system_prompt == ""
    # declared natively, as function schemas the chat template or server takes
    (tool,) = env.tools
    assert tool["function"]["name"] == "add" and tool["function"]["description"] == "Add two integers."
    assert set(tool["function"]["parameters"]["properties"]) == {"a", "b"}
    reply = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "c7"}</tool_call>'
    text, reward, terminated, _, info = env.step(reply)
    assert (text, reward, terminated, info["format_error"]) == ("5", 0.0, False, None)
    assert info["role"] == "tool" and info["tool_messages"] == [
        {"role": "tool", "tool_call_id": "c7", "name": "add", "content": "5"}
    ]
    assert env.step('{"tool": "add", "arguments": {"a": 1, "b": 1}}')[0] == "2"  # the first version's form
    text, _, _, _, info = env.step(
        "let me think"
    )  # not a tool call: a format error, the server never sees it
    assert "reply with one tool call" in text and info["format_error"]
    assert "Error" in env.step('{"name": "mul", "arguments": {}}')[0]
    env.close()


def test_a_rollout_runs_on_a_tool_call_openenv_env(calculator_server):
    tasks = [Task("openenv/calculator", s, server=calculator_server.url) for s in range(2)]
    trajectories = rollout(AddingPolicy(), tasks, RolloutConfig(max_turns=3, env_executor="thread"))
    assert all(t.error is None for t in trajectories)
    assert [[turn.observation for turn in t.turns] for t in trajectories] == [["10", "11", "12"]] * 2
