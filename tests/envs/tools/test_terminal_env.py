"""`palaestra/Tool-Terminal-v0` through gymnasium's API and the rollout: the expert solves every bundled
task (on the local backend, and on docker where an engine runs), random agents solve none, the shell's
state persists within an episode and nothing of it reaches the next, the command limits hold, and a
malformed call is a format error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

import palaestra
from palaestra.agents.base import Generation, GenerationRequest
from palaestra.agents.scripted import OraclePolicy, RandomPolicy
from palaestra.envs.tools.terminal.env import COMMAND_LIMITS, TerminalEnv
from palaestra.envs.tools.terminal.latency import terminal_latency
from palaestra.envs.tools.terminal.tasks import DIFFICULTIES, bundled_tasks, load_tasks
from palaestra.rollout import Task, rollout
from palaestra.tools import ToolCall, get_tool_parser
from tests.sandbox.backends import build, config_for

TASK_IDS = [t.id for t in bundled_tasks()]
FAST = COMMAND_LIMITS.model_copy(update={"wall_time_s": 1.0, "cpu_time_s": 1.0, "max_output_bytes": 2048})
HARMLESS = ["ls", "pwd", "cat *.txt", "echo 42", "wc -l *", "find . -type f", "head -n 3 *", "python3 -V"]


@pytest.fixture(scope="module", params=["bubblewrap", pytest.param("docker", marks=pytest.mark.slow)])
def sandbox(request):
    """One sandbox per backend for the module (docker skips without an engine)."""
    config = config_for(request.param).model_copy(update={"limits": COMMAND_LIMITS, "max_concurrency": 4})
    box = build(config)
    yield box
    box.close()


@pytest.fixture
def env(sandbox):
    env = TerminalEnv(sandbox=sandbox, limits=FAST)
    yield env
    env.close()


def run(command: str) -> str:
    """A reply that runs `command` (Hermes format)."""
    return get_tool_parser("hermes").format("", [ToolCall("run", {"command": command})])


def play_expert(env: TerminalEnv, task_id: str) -> tuple[float, dict]:
    _, info = env.reset(seed=0, options={"task_id": task_id})
    done, reward = False, 0.0
    while not done:
        _, reward, terminated, truncated, info = env.step(info["expert_action"])
        assert info["format_error"] is None, info["format_error"]
        done = terminated or truncated
    return reward, info


def test_the_bundle_has_25_tasks_or_more_in_every_difficulty_and_category():
    tasks = bundled_tasks()
    assert len(tasks) >= 25 and len(set(TASK_IDS)) == len(TASK_IDS)
    assert {t.difficulty for t in tasks} == set(DIFFICULTIES)
    assert {t.category for t in tasks} == {"files", "text", "python", "build", "data"}
    for level in DIFFICULTIES:
        variant = palaestra.make(f"palaestra/Tool-Terminal-v0-{level}").unwrapped
        assert {t.difficulty for t in variant.task_pool} == {level}
        variant.close()


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_the_expert_solves_every_task(sandbox, task_id):
    env = TerminalEnv(sandbox=sandbox)
    try:
        reward, info = play_expert(env, task_id)
        assert reward == 1.0 and info["success"], info.get("test_output")
    finally:
        env.close()


def test_random_agents_solve_nothing(sandbox):
    """Random text (no tool call: the test runs on the untouched files) and random harmless commands."""
    env = TerminalEnv(sandbox=sandbox, limits=FAST)
    rng = np.random.default_rng(0)
    try:
        for task_id in TASK_IDS:
            env.reset(seed=0, options={"task_id": task_id})
            for command in rng.choice(HARMLESS, size=3, replace=False):
                _, reward, terminated, _, _ = env.step(run(str(command)))
                assert reward == 0 and not terminated
            _, reward, terminated, _, info = env.step("I think it is done.")
            assert terminated and reward == 0 and not info["success"], task_id
    finally:
        env.close()
    tasks = [Task("palaestra/Tool-Terminal-v0", seed=s) for s in range(12)]
    trajectories = rollout(RandomPolicy(seed=1), tasks)
    assert len(trajectories) == 12
    assert not any(t.success for t in trajectories) and all(t.error is None for t in trajectories)


def test_the_oracle_succeeds_through_the_rollout():
    tasks = [Task("palaestra/Tool-Terminal-v0-easy", seed=s) for s in range(3)]
    trajectories = rollout(OraclePolicy(), tasks)
    assert all(t.success and t.error is None for t in trajectories)


class TokenExpert:
    """A token-level policy that replies with the env's expert action (tokenized, closed by EOS)."""

    name = "token-expert"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for request in requests:
            text = str(request.info["expert_action"])
            ids = [*self.tokenizer(text, add_special_tokens=False)["input_ids"], self.tokenizer.eos_token_id]
            out.append(Generation(text, tuple(ids), tuple(-0.1 for _ in ids)))
        return out

    async def close(self) -> None:
        pass


def test_the_expert_through_the_token_level_rollout(smollm2_tokenizer):
    """Tool results come back as `tool` messages, in the token sequence with the loss mask off."""
    (traj,) = rollout(TokenExpert(smollm2_tokenizer), [Task("palaestra/Tool-Terminal-v0-hard", seed=4)])
    traj.check()
    assert traj.success and traj.error is None and len(traj.turns) >= 3
    tool_messages = [m for m in traj.messages if m["role"] == "tool"]
    assert len(tool_messages) == len(traj.turns) - 1
    assert all(m["content"] for m in tool_messages)
    assert sum(traj.loss_mask) == sum(end - start for start, end in (t.token_span for t in traj.turns))
    for turn, after in zip(traj.turns, traj.turns[1:], strict=False):
        assert traj.loss_mask[turn.token_span[1] : after.token_span[0]] == [0] * (
            after.token_span[0] - turn.token_span[1]
        )


def test_state_persists_within_an_episode(env):
    env.reset(seed=0, options={"task_id": "files-archive-logs"})
    steps = [
        "mkdir -p deep/er && cd deep/er && echo kept > here.txt",
        "export GREETING='hi there' && LOCAL=gone",
        'pwd; cat here.txt; echo "$GREETING/${LOCAL:-unset}"; echo tmp > /tmp/t',
    ]
    for command in steps:
        observation, *_ = env.step(run(command))
    assert observation == "/work/deep/er\nkept\nhi there/unset\n[exit status 0]"
    call = ToolCall("write_file", {"path": "sub/notes.md", "content": "line 1\nline 'two' $HOME\n"})
    observation, *_ = env.step(env.format_calls([call]))
    assert observation == "wrote 24 bytes to /work/deep/er/sub/notes.md"
    observation, *_, info = env.step(
        env.format_calls([ToolCall("read_file", {"path": "/work/deep/er/sub/notes.md"})])
    )
    assert observation == "line 1\nline 'two' $HOME\n" and info["role"] == "tool"
    observation, *_ = env.step(env.format_calls([ToolCall("read_file", {"path": "missing.txt"})]))
    assert observation.startswith("Error: could not read missing.txt") and "No such file" in observation


def test_nothing_leaks_into_the_next_episode(env):
    env.reset(seed=0, options={"task_id": "files-archive-logs"})
    env.step(
        run("cd incoming && export SECRET=1 && echo x > /work/leak.txt && echo y > /tmp/leak && sleep 30 &")
    )
    env.step(run("echo still here"))
    observation, _ = env.reset(seed=0, options={"task_id": "text-count-lines"})
    observation, *_ = env.step(
        run('pwd; echo "${SECRET:-unset}"; ls -A /work /tmp; cat /proc/[0-9]*/comm | grep -c sleep')
    )
    assert observation.splitlines() == [
        "/work",
        "unset",
        "/tmp:",
        "",
        "/work:",
        "data",
        "0",
        "[exit status 1]",
    ]


def test_time_and_output_limits_stop_a_command_and_the_episode_goes_on(env):
    env.reset(seed=0, options={"task_id": "files-archive-logs"})
    observation, reward, terminated, *_ = env.step(run("echo before; sleep 20"))
    assert observation == "before\n[stopped: the command ran past its 1 s time limit]"
    assert not terminated and reward == 0
    observation, *_ = env.step(run("yes"))
    assert observation.endswith("[stopped: the command wrote more than 2048 bytes of output]")
    assert "output truncated by the sandbox" in observation and len(observation) < 2048 + 200
    observation, *_ = env.step(run("cat incoming/readme.txt"))
    assert observation == "read me\n[exit status 0]"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('<tool_call>{"name": "run", "arguments": {"cmd": "ls"}}</tool_call>', "invalid arguments for run"),
        ('<tool_call>{"name": "run", "arguments": {"command": ""}}</tool_call>', "invalid arguments for run"),
        ('<tool_call>{"name": "sudo", "arguments": {}}</tool_call>', "unknown tool 'sudo'"),
        ('<tool_call>{"name": "run", "arguments": {"command": "ls"</tool_call>', "invalid JSON"),
    ],
)
def test_a_malformed_call_is_a_format_error(env, reply, expected):
    env.reset(seed=0, options={"task_id": "files-archive-logs"})
    observation, reward, terminated, _, info = env.step(reply)
    assert expected in info["format_error"] and expected in observation
    assert not terminated and reward == 0


def test_seed_picks_the_task_and_bad_input_is_refused(tmp_path):
    env = TerminalEnv(difficulty="easy")
    try:
        picked = {env.reset(seed=s)[1]["task_id"] for s in range(30)}
        assert len(picked) > 3 and env.reset(seed=5)[1]["task_id"] == env.reset(seed=5)[1]["task_id"]
        with pytest.raises(ValueError, match="not among"):
            env.reset(options={"task_id": "no-such-task"})
    finally:
        env.close()
    partial = TerminalEnv(sandbox={"max_concurrency": 3})._sandbox_spec  # the rest from the defaults
    assert partial.max_concurrency == 3 and partial.limits == COMMAND_LIMITS and not partial.warm
    with pytest.raises(ValueError, match="difficulty='extreme'"):
        TerminalEnv(difficulty="extreme")
    bad = tmp_path / "tasks.yaml"
    bad.write_text(
        "- id: x\n  difficulty: easy\n  category: files\n  prompt: p\n  test: 'true'\n  expert: []\n"
    )
    with pytest.raises(ValueError, match=r"task 0 \(x\)"):
        load_tasks(bad)


def test_latency_function_times_each_path():
    timings = terminal_latency("echo hi", repeats=2)
    assert set(timings) == {"subprocess", "session", "env_step"}
    assert all(t.n == 2 and 0 < t.median_s <= t.p90_s for t in timings.values())
