"""palaestra serve: OpenEnv sessions of palaestra envs, and RemoteEnv running rollouts on them.

The servers run in this process (a uvicorn thread on a free loopback port), so the tests can see the
sessions and the envs they hold; `test_reliability.py` runs them as separate processes.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("openenv.core", reason="the serve extra (openenv-core) is not installed")

from openenv.core.generic_client import GenericEnvClient

import palaestra
from palaestra.agents.base import SamplingParams
from palaestra.agents.scripted import OraclePolicy, RandomPolicy
from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.remote import RemoteEnv, RemoteEnvError
from palaestra.rollout import RolloutConfig, Task, rollout
from palaestra.serving import EnvServer, create_app

OPEN: set[int] = set()  # ids of the TrackedEnv instances not closed yet
_lock = threading.Lock()


class TrackedEnv(TextEnv):
    """Say the number shown, counting down from 3; `sleep_s` per step; knows which instances are open."""

    def __init__(self, *, sleep_s: float = 0.0):
        super().__init__(max_turns=5)
        self.sleep_s = sleep_s
        self.system_prompt = "Repeat the number."
        with _lock:
            OPEN.add(id(self))

    def _reset(self, options):
        self.n = 3
        return "Say 3.", {"task_id": "tracked", "expert_action": "3", "values": (1, 2)}

    def _step(self, action):
        time.sleep(self.sleep_s)
        if action.strip() != str(self.n):
            return StepOutcome(
                f"Say {self.n}.", format_error="not the number", info={"expert_action": str(self.n)}
            )
        self.n -= 1
        return StepOutcome(
            f"Say {self.n}.",
            reward=1.0,
            terminated=self.n == 0,
            success=self.n == 0,
            info={"expert_action": str(self.n)},
        )

    def close(self):
        with _lock:
            OPEN.discard(id(self))
        super().close()


palaestra.register_env("test/Tracked-v0", TrackedEnv, max_turns=5, override=True)
SERVED = ["Game-Wordle-v0", "Math-Arith-v0", "test/Tracked-v0", "tests.tool_env:test/Lookup-v0"]


def wait_until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture(scope="module")
def server():
    with EnvServer(create_app(SERVED, max_sessions=32, idle_timeout_s=60)) as srv:
        yield srv


def test_an_openenv_generic_client_resets_steps_and_closes(server):
    client = GenericEnvClient(base_url=server.url).sync()
    with client:
        first = client.reset(env_id="test/Tracked-v0", seed=0)
        assert first.observation["text"] == "Say 3."
        assert first.observation["system_prompt"] == "Repeat the number."
        assert first.observation["info"]["values"] == [1, 2]  # JSON-safe: the tuple as a list
        assert first.done is False
        step = client.step({"text": "3"})
        assert (step.observation["text"], step.reward, step.done) == ("Say 2.", 1.0, False)
        assert step.observation["info"]["turn"] == 1 and step.observation["info"]["format_error"] is None
        assert server.sessions.active_sessions == 1 and OPEN
    assert wait_until(lambda: server.sessions.active_sessions == 0 and not OPEN)


def test_http_endpoints_describe_the_server(server):
    import httpx

    base = server.url.replace("ws://", "http://")
    assert httpx.get(f"{base}/health").json()["status"] == "healthy"
    assert httpx.get(f"{base}/metadata").json()["name"] == "palaestra"
    assert "text" in httpx.get(f"{base}/schema").json()["action"]["properties"]


@pytest.mark.parametrize(
    "make_policy", [OraclePolicy, lambda: RandomPolicy(seed=1)], ids=["oracle", "random"]
)
def test_a_served_env_gives_the_same_trajectories_as_in_process(server, make_policy):
    tasks = [Task("palaestra/Game-Wordle-v0", s) for s in range(3)] + [Task("palaestra/Math-Arith-v0", 7)]
    config = RolloutConfig(group_size=2, env_executor="thread", sampling=SamplingParams(seed=0))
    local = rollout(make_policy(), tasks, config)
    remote = rollout(make_policy(), [Task(t.env_id, t.seed, server=server.url) for t in tasks], config)

    def record(traj):
        turns = [(t.action, t.observation, t.reward, t.terminated, t.truncated, t.info) for t in traj.turns]
        return json.loads(
            json.dumps([traj.messages, turns, traj.reward, traj.success, traj.error, traj.task_id])
        )

    assert all(t.error is None for t in remote)
    assert [record(t) for t in remote] == [record(t) for t in local]
    assert sum(len(t.turns) for t in local) > len(local)  # multi-turn episodes were compared


def test_tiny_policy_token_ids_match_on_a_served_env(server, tiny_policy):
    # one episode at a time: the HF micro-batcher then forms the same batches (same padding) in both runs
    tasks = [Task("palaestra/Game-Wordle-v0", 5)]
    config = RolloutConfig(group_size=1, max_turns=2, sampling=SamplingParams(max_new_tokens=8, seed=0))
    local = rollout(tiny_policy, tasks, config)
    remote = rollout(tiny_policy, [Task(t.env_id, t.seed, server=server.url) for t in tasks], config)
    assert [t.token_ids for t in remote] == [t.token_ids for t in local]
    assert [t.loss_mask for t in remote] == [t.loss_mask for t in local]


def test_an_unknown_env_id_is_refused_with_close_matches(server):
    env = RemoteEnv(server.url, "palaestra/Game-Wordl-v0")
    with pytest.raises(RemoteEnvError, match=r"not served here\. Did you mean: palaestra/Game-Wordle-v0"):
        env.reset(seed=0)
    env.close()
    with pytest.raises(RemoteEnvError, match="Math-Arith-v0"):  # the served ids are listed
        RemoteEnv(server.url, "palaestra/Code-Repair-v0").reset(seed=0)


def test_a_full_server_refuses_at_once():
    with EnvServer(create_app(["test/Tracked-v0"], max_sessions=1, idle_timeout_s=60)) as srv:
        first = RemoteEnv(srv.url, "test/Tracked-v0")
        first.reset(seed=0)
        start = time.monotonic()
        with pytest.raises(RemoteEnvError, match=r"CAPACITY_REACHED.*--max-sessions"):
            RemoteEnv(srv.url, "test/Tracked-v0").reset(seed=0)
        assert time.monotonic() - start < 5
        first.close()
        assert wait_until(lambda: srv.sessions.active_sessions == 0)
        again = RemoteEnv(srv.url, "test/Tracked-v0")  # the freed slot is usable
        assert again.reset(seed=0)[0] == "Say 3."
        again.close()


def test_an_idle_session_is_closed_and_its_env_freed():
    with EnvServer(create_app(["test/Tracked-v0"], idle_timeout_s=0.4)) as srv:
        env = RemoteEnv(srv.url, "test/Tracked-v0")
        env.reset(seed=0)
        assert OPEN
        assert wait_until(lambda: srv.sessions.active_sessions == 0 and not OPEN, timeout_s=5)
        with pytest.raises(RemoteEnvError, match=r"closed this session after 0\.4 s idle"):
            env.step("3")
        env.close()


def test_a_step_longer_than_the_idle_timeout_is_not_idleness():
    with EnvServer(create_app(["test/Tracked-v0"], idle_timeout_s=0.3)) as srv:
        env = RemoteEnv(srv.url, "test/Tracked-v0", env_kwargs={"sleep_s": 1.0})
        env.reset(seed=0)
        assert env.step("3")[:2] == ("Say 2.", 1.0)
        env.close()


def test_the_step_timeout_ends_a_served_episode_and_the_rest_go_on(server):
    tasks = [
        Task("test/Tracked-v0", 0, {"sleep_s": 3.0}, server=server.url),
        Task("palaestra/Game-Wordle-v0", 1, server=server.url),
    ]
    config = RolloutConfig(step_timeout_s=0.5, env_executor="thread")
    slow, ok = rollout(OraclePolicy(), tasks, config)
    assert slow.error is not None and "exceeded step_timeout_s=0.5" in slow.error
    assert ok.error is None and ok.success
    assert wait_until(lambda: server.sessions.active_sessions == 0 and not OPEN)


def test_a_server_that_goes_away_fails_the_episode_with_the_cause():
    srv = EnvServer(create_app(["test/Tracked-v0"])).start()
    env = RemoteEnv(srv.url, "test/Tracked-v0")
    env.reset(seed=0)
    srv.stop()
    with pytest.raises(RemoteEnvError, match=f"step on {srv.url} failed"):
        env.step("3")
    env.close()


def test_serve_refuses_bad_input_in_one_line():
    from typer.testing import CliRunner

    from palaestra.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "Game-Wordl-v0", "--port", "0"])
    assert result.exit_code == 2 and "Did you mean: palaestra/Game-Wordle-v0" in result.output
    result = runner.invoke(app, ["serve", "Game-Wordle-v0", "--max-sessions", "0"])
    assert result.exit_code == 2 and "--max-sessions=0" in result.output


def test_eval_runs_an_env_on_a_server(server, tmp_path):
    from typer.testing import CliRunner

    from palaestra.cli import app

    args = [
        "eval",
        "--env",
        "palaestra/Game-Wordle-v0",
        "--env-server",
        server.url,
        "--agent",
        "scripted:oracle",
    ]
    result = CliRunner().invoke(app, [*args, "--episodes", "2", "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["server"] == server.url and saved["summary"]["success_rate"] == 1.0
    result = CliRunner().invoke(app, [*args[:4], "ws://127.0.0.1:9", *args[5:], "--episodes", "1"])
    assert result.exit_code == 2 and "cannot reach the OpenEnv server at ws://127.0.0.1:9" in result.output


def test_a_config_entry_with_a_server_is_checked_there_and_sampled_with_it(server):
    from pathlib import Path

    from palaestra.config import load_config
    from palaestra.trainers.core.preflight import RunSetupError, check_envs
    from palaestra.trainers.core.sampler import TaskPoolSampler, WeightedEnv, make_task_sampler

    quickstart = Path(__file__).parents[2] / "configs" / "quickstart.yaml"
    entry = f'envs.train=[{{id: palaestra/Game-Wordle-v0, server: "{server.url}"}}]'
    cfg = load_config(quickstart, [entry, "envs.eval=[]"])
    check_envs(cfg)  # reset once on the server
    bad = load_config(quickstart, [entry.replace("Wordle", "Wordl"), "envs.eval=[]"])
    with pytest.raises(RunSetupError, match=r"envs\.train\[0\]: .*not served here\. Did you mean"):
        check_envs(bad)
    envs = [WeightedEnv(e.id, e.weight, e.kwargs, e.server) for e in cfg.envs.train]
    assert {t.server for t in make_task_sampler(envs, seed=0).sample(4)} == {server.url}
    pool = make_task_sampler(envs, seed=0, task_pool=3)
    assert isinstance(pool, TaskPoolSampler)
    restored = TaskPoolSampler(envs, range(3), seed=0)
    restored.load_state_dict(pool.state_dict())
    assert restored.pool == pool.pool and restored.pool[0].server == server.url


def test_a_served_tool_env_declares_its_tools_and_gives_the_same_token_exact_episodes(
    server, smollm2_tokenizer
):
    """Tools, tool messages and their ids cross the wire: the same tokens as the env in this process."""
    from tests.rollout.test_tool_rollout import TokenExpert

    tasks = [Task("tests.tool_env:test/Lookup-v0", s) for s in range(3)]
    config = RolloutConfig(env_executor="thread")
    local = rollout(TokenExpert(smollm2_tokenizer), tasks, config)
    remote = rollout(
        TokenExpert(smollm2_tokenizer), [Task(t.env_id, t.seed, server=server.url) for t in tasks], config
    )
    assert all(t.error is None and t.success for t in remote)
    assert [t.token_ids for t in remote] == [t.token_ids for t in local]
    assert [t.messages for t in remote] == [t.messages for t in local]
    assert remote[0].messages[3]["role"] == "tool" and "# Tools" in remote[0].messages[0]["content"]
    env = RemoteEnv(server.url, "tests.tool_env:test/Lookup-v0")
    env.reset(seed=0)
    assert [t["function"]["name"] for t in env.tools] == ["get", "keys"] and env.tool_parser.name == "auto"
    env.close()
