"""`palaestra/Tool-MCP-v0` against real MCP servers started as processes: the bundled calculator and
key-value store (stdio, and streamable HTTP on a loopback port), and `mcp_servers/faulty.py`, which
crashes or hangs on request. Through gymnasium's API and through `palaestra.rollout.rollout`; psutil
checks that no server process outlives its episode."""

from __future__ import annotations

import gc
import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

import palaestra
from palaestra.agents.scripted import OraclePolicy
from palaestra.agents.spec import make_policy
from palaestra.envs.tools import ToolError
from palaestra.envs.tools.mcp.client import MARKER_VARIABLE, MCPServerError
from palaestra.envs.tools.mcp.roundtrip import measure_round_trip
from palaestra.envs.tools.mcp.tasks import BUNDLED_TASKS, load_tasks
from palaestra.rollout import Task, rollout
from palaestra.tools import ToolCall

ENV_ID = "palaestra/Tool-MCP-v0"
SERVERS = Path(__file__).parent / "mcp_servers"
KV_STORE = BUNDLED_TASKS.parent / "servers" / "kv_store.py"
N_BUNDLED = len(load_tasks(BUNDLED_TASKS))


def _marked(tag: str) -> list[psutil.Process]:
    """Live processes started for the test tagged `tag` (servers and their children inherit the tag)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MCP_TEST_TAG") == tag and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _server_children() -> list[psutil.Process]:
    """MCP servers this process started that still run."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if MARKER_VARIABLE in proc.environ() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _faulty_tasks(tmp_path: Path, tag: str) -> Path:
    """A YAML task file over the faulty server; the expert of task i calls tool i, then answers."""
    server = {"command": "python", "args": ["faulty.py"], "cwd": str(SERVERS), "env": {"MCP_TEST_TAG": tag}}
    tasks = [
        {
            "id": tool,
            "prompt": f"Call {tool}, then answer 'done'.",
            "server": server,
            "check": {"answer": "done"},
            "expert": {"calls": [{"name": tool}], "answer": "done"},
        }
        for tool in ("spawn", "crash", "hang", "fail")
    ]
    path = tmp_path / "faulty.yaml"
    path.write_text(yaml.safe_dump({"tasks": tasks}))
    return path


FAULTY = {"spawn": 0, "crash": 1, "hang": 2, "fail": 3}


def _play_expert(env, info) -> tuple[float, dict]:
    done, reward = False, 0.0
    while not done:
        _, reward, terminated, truncated, info = env.step(info["expert_action"])
        done = terminated or truncated
    return reward, info


# -- the task file ---------------------------------------------------------------------------------
def test_a_task_file_reads_the_same_as_yaml_and_jsonl(tmp_path):
    rows = [json.loads(line) for line in BUNDLED_TASKS.read_text().splitlines()]
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump(rows))
    (tmp_path / "tasks.jsonl").write_text(BUNDLED_TASKS.read_text())
    from_yaml, from_jsonl = load_tasks(tmp_path / "tasks.yaml"), load_tasks(tmp_path / "tasks.jsonl")
    assert from_yaml == from_jsonl and len(from_yaml) == N_BUNDLED >= 12
    assert from_yaml[0].server.cwd == str(tmp_path.resolve())  # stdio servers start in the file's folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop("check"), "task 0: check: Field required"),
        (lambda t: t.update(check={}), "at least one of answer, number or state"),
        (lambda t: t["expert"].update(answer="5"), "the expert's answer fails the check"),
        (lambda t: t.update(server={"command": "x", "url": "http://h"}), "task 0: server"),
        (lambda t: t.update(colour="blue"), "colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_task_file_is_one_line_naming_the_task_and_field(tmp_path, change, message):
    task = json.loads(BUNDLED_TASKS.read_text().splitlines()[0])
    change(task)
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump([task]))
    with pytest.raises(ValueError, match=r"tasks\.yaml") as err:
        load_tasks(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_server_command_that_does_not_exist_is_refused_before_any_server_starts(tmp_path):
    task = json.loads(BUNDLED_TASKS.read_text().splitlines()[0])
    task["server"] = {"command": "no-such-mcp-server", "args": []}
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump([task]))
    with pytest.raises(ValueError, match="task calc-add: the server command 'no-such-mcp-server' is neither"):
        palaestra.make(ENV_ID, tasks=str(path))


def test_repeated_task_ids_are_refused(tmp_path):
    line = BUNDLED_TASKS.read_text().splitlines()[0]
    path = tmp_path / "tasks.jsonl"
    path.write_text(line + "\n" + line + "\n")
    with pytest.raises(ValueError, match="repeated: calc-add"):
        load_tasks(path)


# -- episodes through gymnasium's API ---------------------------------------------------------------
def test_the_expert_solves_every_bundled_task_and_each_server_ends_with_its_episode():
    env = palaestra.make(ENV_ID)
    try:
        for index in range(N_BUNDLED):
            _, info = env.reset(seed=0, options={"task_index": index})
            server = env.unwrapped.connection.process
            assert server.is_running()
            reward, info = _play_expert(env, info)
            assert reward == 1.0 and info["success"], (index, info)
            assert env.unwrapped.connection is None and not server.is_running()
    finally:
        env.close()
    assert _server_children() == []


def test_an_env_stepped_inside_a_running_event_loop_works_the_same():
    """A notebook or an async program already runs a loop on its thread: the env's requests then run
    its own loop on a helper thread, with the same results."""
    import asyncio

    async def play_in_a_running_loop() -> tuple[float, dict]:
        env = palaestra.make(ENV_ID)
        try:
            _, info = env.reset(seed=0, options={"task_index": 0})
            return _play_expert(env, info)
        finally:
            env.close()

    reward, info = asyncio.run(play_in_a_running_loop())
    assert reward == 1.0 and info["success"]
    assert _server_children() == []


def test_the_seed_picks_the_task_and_the_tools_come_from_the_server():
    env = palaestra.make(ENV_ID)
    try:
        first = [env.reset(seed=seed)[1]["task_id"] for seed in (0, 1, 2)]
        again = [env.reset(seed=seed)[1]["task_id"] for seed in (0, 1, 2)]
        assert first == again and len(set(first)) > 1
        env.reset(seed=0, options={"task_index": 0})
        tools = {tool["function"]["name"]: tool["function"] for tool in env.unwrapped.tools}
        assert set(tools) == {"add", "subtract", "multiply", "divide", "power", "sqrt"}
        assert tools["add"]["parameters"]["required"] == ["a", "b"]
        assert tools["add"]["description"] == "a + b."
    finally:
        env.close()


def test_a_wrong_answer_fails_and_a_failed_state_check_says_why():
    env = palaestra.make(ENV_ID)
    try:
        _, info = env.reset(seed=0, options={"task_index": 0})  # calc-add: 6912
        _, _, _, _, info = env.step(info["expert_action"])
        observation, reward, terminated, _, info = env.step("6913")
        assert terminated and reward == 0.0 and not info["success"]
        assert "'6913' is not '6912'" in observation
        index = [t.id for t in env.unwrapped.tasks].index("kv-write")
        env.reset(seed=0, options={"task_index": index})
        reply = env.unwrapped.format_calls([ToolCall("set", {"key": "sky", "value": "green"})])
        env.step(reply)
        observation, reward, terminated, _, info = env.step("done")
        assert terminated and reward == 0.0
        assert info["check_failures"] == ["get(key='sky') returns 'green', not 'blue'"]
    finally:
        env.close()


def test_malformed_calls_are_format_errors_and_tool_errors_are_results():
    env = palaestra.make(ENV_ID)
    try:
        env.reset(seed=0, options={"task_index": 0})
        for reply, expected in [
            ('<tool_call>{"name": "add", "arguments": {"a": "x", "b": 1}}</tool_call>', "is not of type"),
            ('<tool_call>{"name": "launch", "arguments": {}}</tool_call>', "unknown tool 'launch'"),
            ('<tool_call>{"name": "add", "arguments": {"a": 1', "never closed"),
        ]:
            observation, reward, terminated, _, info = env.step(reply)
            assert expected in info["format_error"] and expected in observation
            assert reward == 0.0 and not terminated
        reply = env.unwrapped.format_calls(
            [ToolCall("divide", {"a": 1, "b": 0}), ToolCall("add", {"a": 1, "b": 2})]
        )
        _, _, terminated, _, info = env.step(reply)
        assert info["format_error"] is None and not terminated and info["role"] == "tool"
        assert [m["content"] for m in info["tool_messages"]] == [
            "Error executing tool divide: division by zero",  # the SDK's server says which tool
            "3",
        ]
    finally:
        env.close()


def test_a_server_reached_over_streamable_http_keeps_state_per_session(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(KV_STORE), "--http", str(port), "--set", "color=teal"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the HTTP server did not start"
                time.sleep(0.2)
        url = {"url": f"http://127.0.0.1:{port}/mcp"}
        tasks = [json.loads(line) for line in BUNDLED_TASKS.read_text().splitlines()]
        tasks = [{**t, "server": url} for t in tasks if t["id"] in ("kv-read", "kv-write")]
        path = tmp_path / "http.jsonl"
        path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
        env = palaestra.make(ENV_ID, tasks=str(path))
        try:
            for index in (0, 1):
                _, info = env.reset(seed=0, options={"task_index": index})
                reward, info = _play_expert(env, info)
                assert reward == 1.0 and info["success"]
            env.reset(seed=0, options={"task_index": 1})  # a new session: kv-write's value is not there
            _, _, _, _, info = env.step(env.unwrapped.format_calls([ToolCall("get", {"key": "sky"})]))
            assert info["tool_messages"][0]["content"] == "Error executing tool get: no key 'sky'"
        finally:
            env.close()
    finally:
        server.kill()
        server.wait()


def test_closing_from_another_thread_mid_call_ends_the_hung_server_at_once(tmp_path):
    """The rollout closes an env whose step timed out from another thread: the server is ended, so the
    stuck request returns long before its own call_timeout_s."""
    import threading
    import time

    tag = uuid.uuid4().hex
    env = palaestra.make(ENV_ID, tasks=str(_faulty_tasks(tmp_path, tag)), call_timeout_s=60)
    _, info = env.reset(seed=0, options={"task_index": FAULTY["hang"]})
    outcome: list[BaseException] = []

    def step() -> None:
        try:
            env.step(info["expert_action"])
        except BaseException as exc:
            outcome.append(exc)

    stepping = threading.Thread(target=step)
    stepping.start()
    time.sleep(1.0)  # the call is on its way to the hung tool
    start = time.monotonic()
    env.close()
    stepping.join(timeout=30)
    assert not stepping.is_alive() and time.monotonic() - start < 20
    assert outcome and isinstance(outcome[0], MCPServerError)
    assert _marked(tag) == []


@pytest.mark.parametrize(
    ("tool", "cause"),
    [
        ("crash", "died during tools/call 'crash'; its stderr ends: faulty server: crashing on purpose"),
        ("hang", "hung: tools/call 'hang' got no answer within call_timeout_s=2"),
    ],
)
def test_a_server_that_crashes_or_hangs_fails_the_step_and_its_processes_end(tmp_path, tool, cause):
    tag = uuid.uuid4().hex
    env = palaestra.make(ENV_ID, tasks=str(_faulty_tasks(tmp_path, tag)), call_timeout_s=2)
    try:
        _, info = env.reset(seed=0, options={"task_index": FAULTY[tool]})
        with pytest.raises(MCPServerError, match=r"faulty\.py") as err:
            env.step(info["expert_action"])
        assert cause in str(err.value) and not isinstance(err.value, ToolError)
        assert _marked(tag) == []
    finally:
        env.close()


def test_a_tool_error_is_the_agents_to_see(tmp_path):
    env = palaestra.make(ENV_ID, tasks=str(_faulty_tasks(tmp_path, uuid.uuid4().hex)))
    try:
        _, info = env.reset(seed=0, options={"task_index": FAULTY["fail"]})
        _, _, _, _, info = env.step(info["expert_action"])
        assert info["tool_messages"][0]["content"].endswith("this tool always fails")
    finally:
        env.close()


@pytest.mark.parametrize("how", ["close", "drop"])
def test_no_server_process_outlives_an_env_closed_or_dropped_mid_episode(tmp_path, how):
    tag = uuid.uuid4().hex
    env = palaestra.make(ENV_ID, tasks=str(_faulty_tasks(tmp_path, tag)))
    _, info = env.reset(seed=0, options={"task_index": FAULTY["spawn"]})
    _, _, _, _, info = env.step(info["expert_action"])
    child = psutil.Process(int(info["tool_messages"][0]["content"]))
    assert child.is_running() and len(_marked(tag)) == 2  # the server and its child
    if how == "close":
        env.close()
    else:
        del env, info
        gc.collect()
    assert _marked(tag) == [] and not child.is_running()


def test_an_episode_cut_by_max_turns_ends_its_server(tmp_path):
    env = palaestra.make(ENV_ID, tasks=str(_faulty_tasks(tmp_path, uuid.uuid4().hex)), max_turns=2)
    try:
        env.reset(seed=0, options={"task_index": FAULTY["spawn"]})
        server = env.unwrapped.connection.process
        echo = env.unwrapped.format_calls([ToolCall("echo", {"text": "hi"})])
        assert env.step(echo)[3] is False
        _, _, terminated, truncated, info = env.step(echo)
        assert truncated and not terminated and info["tool_messages"][0]["content"] == "hi"
        assert env.unwrapped.connection is None and not server.is_running()
    finally:
        env.close()


# -- episodes through the rollout --------------------------------------------------------------------
def test_the_oracle_solves_every_bundled_task_in_a_rollout():
    tasks = [Task(ENV_ID, seed=0, options={"task_index": i}) for i in range(N_BUNDLED)]
    trajectories = rollout(make_policy("scripted:oracle"), tasks)
    assert [t.error for t in trajectories] == [None] * N_BUNDLED
    assert all(t.success for t in trajectories)
    assert all(t.turns[0].info["role"] == "tool" for t in trajectories)
    assert _server_children() == []


def test_a_crashed_or_hung_server_fails_its_episode_in_a_rollout_with_the_cause(tmp_path):
    tag = uuid.uuid4().hex
    kwargs = {"tasks": str(_faulty_tasks(tmp_path, tag)), "call_timeout_s": 2}
    tasks = [Task(ENV_ID, seed=0, env_kwargs=kwargs, options={"task_index": FAULTY[t]}) for t in FAULTY]
    by_tool = dict(zip(FAULTY, rollout(make_policy("scripted:oracle"), tasks), strict=True))
    crashed, hung, spawned, failed = (by_tool[t] for t in ("crash", "hang", "spawn", "fail"))
    assert crashed.error.startswith("MCPServerError: the MCP server python faulty.py died during")
    assert hung.error.startswith("MCPServerError: the MCP server python faulty.py hung")
    assert not crashed.success and not hung.success
    assert spawned.error is None and spawned.success and failed.error is None and failed.success
    assert _marked(tag) == []


def test_a_multi_step_task_is_recorded_token_exact(smollm2_tokenizer):
    index = [t.id for t in load_tasks(BUNDLED_TASKS)].index("kv-sum")  # two calls in one reply, then one
    policy = OraclePolicy(tokenizer=smollm2_tokenizer)
    (traj,) = rollout(policy, [Task(ENV_ID, seed=0, options={"task_index": index})])
    traj.check()
    assert traj.success and traj.error is None and len(traj.turns) == 3
    results = [m["content"] for m in traj.messages if m["role"] == "tool"]
    assert results == ["12", "30", "ok"]
    # only the replies are trained on: the tool results and the template's text are not
    assert sum(traj.loss_mask) == sum(end - start for start, end in (t.token_span for t in traj.turns))
    between = traj.token_ids[traj.turns[0].token_span[1] : traj.turns[1].token_span[0]]
    assert all(text in smollm2_tokenizer.decode(between) for text in ("12", "30"))


def test_the_round_trip_measure_runs_both_sides():
    result = measure_round_trip(3)
    assert result.calls == 3 and result.env_s > 0 and result.direct_s > 0 and result.ratio > 0
    assert _server_children() == []
    with pytest.raises(ValueError, match="n=0"):
        measure_round_trip(0)
