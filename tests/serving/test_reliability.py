"""Reliability of `palaestra serve` on loopback, with real processes: clients killed with SIGKILL in
the middle of an episode, or frozen, leave no env resource behind (checked with psutil)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")
pytest.importorskip("openenv.core", reason="the serve extra (openenv-core) is not installed")

ROOT = Path(__file__).resolve().parents[2]
CLIENT = """
import sys, time
from palaestra.envs.remote import RemoteEnv
env = RemoteEnv(sys.argv[1], sys.argv[2])
observation, info = env.reset(seed=0)
env.step("hello")
print("ready", flush=True)
time.sleep(600)
"""
pytestmark = pytest.mark.slow  # each test starts a server and clients: seconds of imports each


def start_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/serving/child_env.py"), "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    found = re.search(r"ws://[\d.]+:\d+", line)
    assert found, (
        f"the server did not start: {line}{server.stdout.read() if server.poll() is not None else ''}"
    )
    logs = server.stdout  # read on: a full pipe would block the server
    threading.Thread(target=lambda: [None for _ in logs], daemon=True).start()
    return server, found.group(0)


def start_clients(url: str, env_id: str, n: int) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, url, env_id], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(n)
    ]
    for client in clients:
        assert client.stdout is not None and client.stdout.readline().strip() == "ready"
    return clients


def descendants(pid: int, name: str) -> list[psutil.Process]:
    """Live descendants whose command line holds `name` (an exited child not yet reaped is gone)."""
    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and name in " ".join(p.cmdline()):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def stop(*processes: subprocess.Popen[str]) -> None:
    for p in processes:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


# Long enough that a client started first is not idle-closed while the others start (python imports take
# seconds each on a loaded 2-core machine; 3 s once reaped the first session before the count below).
IDLE_TIMEOUT_S = 10


def test_sigkilled_and_frozen_clients_leave_no_child_process_behind():
    server, url = start_server("test/Child-v0", "--idle-timeout", str(IDLE_TIMEOUT_S))
    clients: list[subprocess.Popen[str]] = []
    try:
        clients = start_clients(url, "test/Child-v0", 4)
        assert len(descendants(server.pid, "sleep 600")) == 4  # one per session
        for client in clients[:3]:
            client.send_signal(signal.SIGKILL)  # dead: the kernel closes their sockets
        assert wait_for(lambda: len(descendants(server.pid, "sleep 600")) == 1, timeout_s=3)
        clients[3].send_signal(signal.SIGSTOP)  # frozen: its socket stays open, the idle timeout ends it
        assert wait_for(lambda: not descendants(server.pid, "sleep 600"), timeout_s=IDLE_TIMEOUT_S + 5)
        again = start_clients(url, "test/Child-v0", 1)  # the server goes on serving
        assert len(descendants(server.pid, "sleep 600")) == 1
        stop(*again)
    finally:
        for client in clients:
            if client.poll() is None:
                client.send_signal(signal.SIGCONT)
        stop(*clients, server)


def test_sigkilled_clients_of_a_web_env_leave_no_browser_context_behind():
    pytest.importorskip("playwright")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Chromium is not installed (make sysdeps)")
    server, url = start_server("palaestra/Web-ClickButton-v0", "--idle-timeout", str(IDLE_TIMEOUT_S))
    clients: list[subprocess.Popen[str]] = []
    try:
        clients = start_clients(url, "palaestra/Web-ClickButton-v0", 4)
        in_use = len(descendants(server.pid, "--type=renderer"))
        assert in_use >= 4  # a renderer per episode's context (plus warm ones)
        for client in clients:
            client.send_signal(signal.SIGKILL)
        # the sessions' contexts close; only the browser's warm pages (2 by default) stay
        assert wait_for(lambda: len(descendants(server.pid, "--type=renderer")) <= 2, timeout_s=10)
    finally:
        stop(*clients, server)


def test_a_server_killed_mid_episode_fails_that_episode_and_the_rollout_goes_on():
    from palaestra.agents.base import Generation
    from palaestra.agents.scripted import OraclePolicy
    from palaestra.rollout import RolloutConfig, Task, rollout

    server, url = start_server("test/Child-v0", "--idle-timeout", "30")

    class KillingPolicy(OraclePolicy):
        """The oracle, except that the served episode's second turn first kills the server (-9)."""

        async def generate(self, requests):
            if any(r.request_id == "test/Child-v0/0/0/1" for r in requests):
                server.kill()
                server.wait()
            replies = await super().generate([r for r in requests if "expert_action" in r.info])
            served = [Generation(text="hello", finish_reason="stop")] * (len(requests) - len(replies))
            return replies + served  # one request per call here (one episode per generate call)

    try:
        tasks = [Task("test/Child-v0", 0, server=url), Task("palaestra/Game-Wordle-v0", 1)]
        config = RolloutConfig(max_turns=3, env_executor="thread", max_concurrency=1)
        served, local = rollout(KillingPolicy(), tasks, config)
        assert served.error is not None and "RemoteEnvError" in served.error and url in served.error
        assert len(served.turns) == 1  # the first turn was recorded before the server died
        assert local.error is None and local.success
    finally:
        stop(server)
