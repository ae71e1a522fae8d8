"""The browser runtime under failure and load: crashes, hangs, leaks, concurrent episodes, GUI rollouts."""

from __future__ import annotations

import asyncio
import glob
import os
import tempfile

import numpy as np
import psutil
import pytest

from palaestra.agents.base import message_images
from palaestra.agents.scripted import OraclePolicy
from palaestra.envs.web.browser import BrowserConfig, BrowserCrashed, BrowserHost, BrowserTimeout
from palaestra.envs.web.env import WebEnv
from palaestra.envs.web.tasks import TASKS, TaskInstance, WebTask
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task
from palaestra.rollout.storage import load_trajectories, save_trajectories

HANG_SCRIPT = """
palaestra.define({
  render(app) { app.append(palaestra.h("button", {onclick: () => { while (true) {} }}, "Freeze")); },
  progress() { return 0; },
  expert() { return {op: "click", el: document.querySelector("button")}; },
});
"""


def _browsers() -> list[psutil.Process]:
    """Live Chromium processes started (through Playwright's driver) by this test process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _profiles() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "playwright_chromiumdev_profile-*")))


@pytest.fixture
def host():
    with BrowserHost(BrowserConfig(call_timeout_s=5)) as host:
        yield host


def test_a_killed_browser_fails_the_episode_and_is_relaunched(host):
    env = WebEnv("ClickButton", browser=host)
    env.reset(seed=0)
    main = [p for p in _browsers() if "--type=" not in " ".join(p.cmdline())]
    assert main, "no Chromium browser process found"
    for process in main:
        process.kill()
    with pytest.raises(BrowserCrashed):
        env.step("click [1]")
    _, info = env.reset(seed=0)  # a fresh browser
    assert host.launches == 2
    _, reward, terminated, _, info = env.step(info["expert_action"])
    assert terminated and info["success"] and reward == 1.0
    env.close()


def test_a_hung_page_times_out_and_the_next_episode_runs(host, monkeypatch, tmp_path):
    script = tmp_path / "hang.js"
    script.write_text(HANG_SCRIPT)
    monkeypatch.setitem(
        TASKS, "Hang", WebTask("Hang", str(script), "freezes on click", 3, lambda rng: TaskInstance("Click."))
    )
    env = WebEnv("Hang", browser=host)
    _, info = env.reset(seed=0)
    with pytest.raises(BrowserTimeout):
        env.step(info["expert_action"])
    env.close()
    ok = WebEnv("ClickButton", browser=host)
    _, info = ok.reset(seed=1)
    assert ok.step(info["expert_action"])[4]["success"]
    ok.close()


def _drivers() -> set[int]:
    """Playwright drivers (node) this test process started: each browser host has its own."""
    return {p.pid for p in psutil.Process().children() if "node" in p.name() or "Main" in p.name()}


def test_closing_leaves_no_process_or_profile_behind():
    before_profiles = _profiles()
    # other hosts (the process-wide one of earlier web tests) keep their browsers and start renderers
    # meanwhile: only this host's driver's descendants are this test's
    before_drivers = _drivers()
    host = BrowserHost()
    envs = [WebEnv("Login", browser=host, mode=mode) for mode in ("text", "gui", "text")]
    for seed, env in enumerate(envs):
        env.reset(seed=seed)
    assert host.episode_contexts == 3
    drivers = [psutil.Process(pid) for pid in _drivers() - before_drivers]
    assert len(drivers) == 1, "one Playwright driver per browser host"
    mine = [p for p in drivers[0].children(recursive=True) if "chrom" in p.name()]
    assert mine
    for env in envs:
        env.close()
    assert host.episode_contexts == 0
    host.wait_idle()
    assert host.open_contexts == host.config.warm_pages  # closed, but for the pages kept warm
    host.close()
    assert not [p for p in mine if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert _profiles() <= before_profiles


def test_warm_pages_are_fresh_isolated_and_give_the_same_pages(host):
    """Every episode gets its own never-used context, and pages come out as without warm pages."""
    env = WebEnv("Login", browser=host)
    contexts, observations = set(), []
    cookie = {"name": "left", "value": "behind", "url": "http://task.invalid/"}
    for seed in (0, 1, 0):
        observation, _ = env.reset(seed=seed)
        contexts.add(id(env._context))
        observations.append(observation)
        # a fresh page in a context no other episode touched: no history, no cookies left by the last one
        assert env._call(lambda: env._page.evaluate("history.length")) == 1
        assert env._call(env._context.cookies) == []
        env._call(lambda: env._context.add_cookies([cookie]))
        host.wait_idle()  # a lull (the policy thinking): the closed context's replacement gets made
        if seed == 1:  # seed 0's context closed and warm pages replaced it: the next reset takes one
            assert host.open_contexts == 1 + host.config.warm_pages
    assert len(contexts) == 3 and observations[0] == observations[2]
    with BrowserHost(BrowserConfig(warm_pages=0)) as cold:
        fresh = WebEnv("Login", browser=cold)
        assert fresh.reset(seed=0)[0] == observations[0]
        fresh.close()
        cold.wait_idle()
        assert cold.open_contexts == 0
    env.close()


def test_eight_concurrent_episodes_through_the_async_runner(host):
    runner = RolloutRunner(
        OraclePolicy(),
        RolloutConfig(max_concurrency=8, env_executor="thread"),
        env_factory=lambda env_id, **kw: WebEnv(kw.pop("task"), browser=host, **kw),
    )
    tasks = [Task("palaestra/Web-Login-v0", seed=s, env_kwargs={"task": "Login"}) for s in range(8)]
    try:
        trajectories = asyncio.run(runner.run(tasks))
    finally:
        runner.close()
    assert [t.error for t in trajectories] == [None] * 8
    assert all(t.success and t.reward == pytest.approx(1.0) for t in trajectories)
    assert len({t.task_id for t in trajectories}) == 8
    assert host.episode_contexts == 0  # every episode closed its context


def test_gui_rollouts_carry_screenshots_into_saved_trajectories(host, tmp_path):
    runner = RolloutRunner(
        OraclePolicy(),
        RolloutConfig(env_executor="thread"),
        env_factory=lambda env_id, **kw: WebEnv("ClickButton", mode="gui", browser=host),
    )
    (trajectory,) = asyncio.run(runner.run([Task("palaestra/Web-ClickButton-v0-gui", seed=3)]))
    runner.close()
    assert trajectory.success and trajectory.error is None
    first = trajectory.messages[1]
    assert first["content"][0]["type"] == "text" and "Task:" in first["content"][0]["text"]
    (url,) = message_images(first)
    assert url.startswith("data:image/png;base64,")
    assert isinstance(trajectory.turns[0].observation, str)
    path = save_trajectories([trajectory], tmp_path / "gui.parquet")
    (loaded,) = load_trajectories(path)
    assert message_images(loaded.messages[1]) == [url]
    assert loaded.messages[0] == trajectory.messages[0]


def test_render_rgb_array_is_the_page(host):
    env = WebEnv("ClickButton", browser=host, render_mode="rgb_array", viewport=(320, 240))
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.shape == (240, 320, 3) and frame.std() > 0
    env.close()
