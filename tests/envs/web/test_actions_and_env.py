"""The action language (pure parsing) and WebEnv's options: sparse rewards, stop, step limits, errors."""

from __future__ import annotations

import pytest

from palaestra.envs.web.actions import ActionParseError, WebAction, format_action, parse_action
from palaestra.envs.web.env import WebEnv
from palaestra.envs.web.snapshot import compact_snapshot, find_ref, snapshot_ids


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("click [12]", WebAction("click", ref="e12")),
        ("I will log in now.\n`click [e3]`", WebAction("click", ref="e3")),
        ('type [7] "say \\"hi\\"\\nbye"', WebAction("type", ref="e7", text='say "hi"\nbye')),
        ('Action: select [3] "Navy Blue"', WebAction("select", ref="e3", text="Navy Blue")),
        ('press "Control+A"', WebAction("press", text="Control+A")),
        ("scroll up", WebAction("scroll", dy=-1.0)),
        ("click [1]\nstop", WebAction("stop")),
    ],
)
def test_text_actions_parse(reply, expected):
    assert parse_action(reply, "text") == expected
    assert parse_action(format_action(expected, "text"), "text") == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("click(120, 48)", WebAction("click", x=120, y=48)),
        ('```\ntype("hello world")\n```', WebAction("type", text="hello world")),
        ('key("Enter")', WebAction("key", text="Enter")),
        ("scroll(0, -250.5)", WebAction("scroll", dx=0, dy=-250.5)),
        ("stop()", WebAction("stop")),
    ],
)
def test_gui_actions_parse(reply, expected):
    assert parse_action(reply, "gui") == expected
    assert parse_action(format_action(expected, "gui"), "gui") == expected


@pytest.mark.parametrize(
    ("reply", "mode"),
    [
        ("click 12", "text"),
        ("click(1, 2)", "text"),
        ("click [3]", "gui"),
        ('type [1] "open', "text"),
        ("", "gui"),
    ],
)
def test_unreadable_replies_name_the_format(reply, mode):
    with pytest.raises(ActionParseError, match="no action found"):
        parse_action(reply, mode)


def test_snapshot_compaction_and_ref_lookup():
    raw = (
        '- generic [ref=e1]:\n  - link "Home" [ref=e2] [cursor=pointer]:\n    - /url: "#"\n'
        '  - button "Save" [ref=e3]\n  - button "Save" [ref=e4]\n  - checkbox "Agree" [checked] [ref=e5]'
    )
    assert compact_snapshot(raw) == (
        '- generic [1]:\n  - link "Home" [2]\n  - button "Save" [3]\n  - button "Save" [4]\n'
        '  - checkbox "Agree" [checked] [5]'
    )
    assert snapshot_ids(raw) == {"e1", "e2", "e3", "e4", "e5"}
    assert find_ref(raw, "button", "Save", nth=1, count=2) == "e4"
    assert find_ref(raw, "checkbox", "Agree") == "e5"
    assert find_ref(raw, "button", "Save", nth=0, count=1) is None  # the guess disagrees with the tree
    assert find_ref(raw, "button", "Sav") is None


def test_sparse_rewards_pay_only_success_and_stop_ends_the_episode():
    env = WebEnv("Login", reward="sparse")
    try:
        _, info = env.reset(seed=4)
        _, reward, terminated, _, info = env.step(info["expert_action"])  # the first field: progress, no pay
        assert reward == 0.0 and not terminated and info["progress"] > 0
        _, reward, terminated, _, info = env.step("stop")
        assert terminated and not info["success"] and reward == 0.0
        _, info = env.reset(seed=4)
        rewards = []
        while True:
            _, reward, terminated, truncated, info = env.step(info["expert_action"])
            rewards.append(reward)
            if terminated or truncated:
                break
        assert rewards[-1] == 1.0 and sum(rewards) == 1.0 and info["success"]
    finally:
        env.close()


def test_step_limit_truncates_and_failed_actions_are_reported():
    env = WebEnv("Login", max_steps=2)
    try:
        observation, _ = env.reset(seed=0)
        observation, _, terminated, truncated, info = env.step("click [999]")
        assert info["action_error"] == "there is no element [999] on the page"
        assert "Your last action failed" in observation and not (terminated or truncated)
        observation, _, terminated, truncated, info = env.step("no idea")
        assert truncated and not terminated and info["format_error"]
        assert "Expected: click [N]" in observation
    finally:
        env.close()


def test_bad_arguments_are_rejected_with_the_choices():
    with pytest.raises(ValueError, match="unknown web task 'Nope'"):
        WebEnv("Nope")
    with pytest.raises(ValueError, match="mode="):
        WebEnv("Login", mode="vr")
    with pytest.raises(ValueError, match="viewport="):
        WebEnv("Login", viewport=(10, 10))
    with pytest.raises(RuntimeError, match="reset"):
        WebEnv("Login").page_html()
