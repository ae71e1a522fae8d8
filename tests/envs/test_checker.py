"""The env checker (`palaestra envs check`): a conformant env passes, each flaw fails with its fix."""

from __future__ import annotations

import json
import random

import gymnasium as gym
import pytest
from typer.testing import CliRunner

from palaestra import StepOutcome, TextEnv
from palaestra.cli import app
from palaestra.envs.checker import run_checks

runner = CliRunner()
REVERSE = "tests.gym_reverse_env:mine/Reverse-v0"


class FlawedEnv(TextEnv):
    """Guess the hidden digit in two turns; `flaw` breaks one part of the contract."""

    def __init__(self, flaw: str = "", render_mode: str | None = None):
        super().__init__(max_turns=2, render_mode=render_mode)
        self.flaw = flaw

    def _reset(self, options):
        self._digit = int(self.np_random.integers(0, 10))
        if self.flaw == "global-rng":
            self._digit = random.randrange(10)
        return "Guess a digit.", {"task_id": str(self._digit), "expert_action": self._expert()}

    def _expert(self) -> str:
        return str(self._digit + (1 if self.flaw == "wrong-expert" else 0))

    def _step(self, action):
        if self.flaw == "raises":
            int(action)  # a reply that is no number raises
        right = action.strip() == str(self._digit)
        reward = 5.0 if self.flaw == "big-reward" and right else float(right)
        return StepOutcome(
            "yes" if right else "no",
            reward=reward,
            terminated=right,
            success=right,
            info={"expert_action": self._expert()},
        )

    def step(self, action):
        observation, reward, terminated, truncated, info = super().step(action)
        if self.flaw == "endless":
            truncated = False
        if self.flaw == "no-task-id":
            info.pop("task_id")
        return observation, reward, terminated, truncated, info


gym.register(id="checker/Flawed-v0", entry_point=FlawedEnv)
_ = __import__("palaestra").register_env(
    "checker/Flawed-v0", FlawedEnv, max_turns=2, reward_range=(0.0, 1.0), override=True
)


def test_a_conformant_env_passes_every_check():
    report = run_checks("checker/Flawed-v0")
    assert report.ok, str(report)
    assert [f.check for f in report.findings] == [
        "gymnasium",
        "text spaces",
        "determinism",
        "info keys",
        "reward range",
        "episode length",
        "format errors",
        "expert",
        "tools",
    ]


@pytest.mark.parametrize(
    ("flaw", "check", "detail", "fix"),
    [
        ("global-rng", "determinism", "two runs differ", "self.np_random"),
        ("no-task-id", "info keys", "info lacks task_id (first missing after step 1)", "task_id"),
        ("big-reward", "reward range", "outside the registered reward_range [0, 1]", "reward_range"),
        ("endless", "episode length", "did not end within max_turns=2", "terminated or truncated"),
        ("raises", "format errors", "raised ValueError", "format_error"),
        ("wrong-expert", "expert", "seed 0: playing expert_action did not succeed", "expert_action"),
    ],
)
def test_each_flaw_fails_its_check_with_the_fix(flaw, check, detail, fix):
    if flaw == "global-rng":
        random.seed(0)  # different digits in the two runs of a seed, whatever the test order
    report = run_checks("checker/Flawed-v0", {"flaw": flaw})
    failed = {f.check: f for f in report.failures}
    assert check in failed, str(report)
    assert detail in failed[check].detail and fix in failed[check].fix, str(report)


def test_a_plain_gymnasium_env_is_told_what_it_lacks():
    report = run_checks(REVERSE)
    assert {f.check for f in report.failures} == {"info keys", "format errors"}, str(report)
    passed = {f.check for f in report.findings if f.ok}
    assert {"gymnasium", "text spaces", "determinism", "episode length", "expert"} <= passed


def test_envs_check_command_exit_codes_and_json():
    good = runner.invoke(app, ["envs", "check", "checker/Flawed-v0"], env={"COLUMNS": "200"})
    assert good.exit_code == 0, good.output
    assert "PASS determinism" in good.output and "passes every check" in good.output
    bad = runner.invoke(app, ["envs", "check", "checker/Flawed-v0", "--env-kwarg", "flaw=endless"])
    assert bad.exit_code == 1
    assert "FAIL episode length" in bad.output and "fix: end the episode" in bad.output
    data = json.loads(
        runner.invoke(app, ["envs", "check", REVERSE, "--json"]).stdout  # stdout alone: JSON
    )
    assert data["env_id"] == "mine/Reverse-v0" and data["ok"] is False
    assert {f["check"] for f in data["findings"] if not f["ok"]} == {"info keys", "format errors"}
    unknown = runner.invoke(app, ["envs", "check", "checker/Flawd-v0"])
    assert unknown.exit_code == 2 and "Did you mean: checker/Flawed-v0" in unknown.output


def test_oracle_on_an_env_without_expert_action_is_one_line_before_any_episode(tmp_path):
    args = ["--env", REVERSE, "--env-kwarg", "expert=false"]
    result = runner.invoke(app, ["eval", *args, "--agent", "scripted:oracle", "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("error: scripted:oracle plays the env's info['expert_action'], which")
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "e" / "results.json").exists()
    demos = runner.invoke(app, ["demos", *args, "--out", str(tmp_path / "d")])
    assert demos.exit_code == 2 and "palaestra demos plays the env's info['expert_action']" in demos.output


def test_an_env_that_cannot_be_made_is_one_finding_naming_the_kwarg():
    report = run_checks("palaestra/Math-GSM8K-v0")
    assert [(f.check, f.ok) for f in report.findings] == [("make", False)]
    assert "needs path=" in report.findings[0].detail and "--env-kwarg" in report.findings[0].fix


class FlawedToolEnv(__import__("tests.tool_env", fromlist=["LookupEnv"]).LookupEnv):
    """The lookup tool env with one flaw in its tools (`flaw`)."""

    def __init__(self, flaw: str = "", render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        from palaestra.tools import function_tool

        self.flaw = flaw
        if flaw == "bad-schema":
            self.tools = [
                function_tool("get", "Get.", {"type": "object", "properties": {"key": {"type": 5}}})
            ]
        elif flaw == "same-name":
            self.tools = [self.tools[0], self.tools[0]]

    def _reset(self, options):
        observation, info = super()._reset(options)
        if self.flaw == "bad-expert-call":
            info["expert_action"] = info["expert_action"].replace('"key"', '"name"')
        return observation, info


__import__("palaestra").register_env(
    "checker/FlawedTool-v0", FlawedToolEnv, max_turns=4, reward_range=(0.0, 1.0), override=True
)


def test_a_tool_env_passes_the_tools_check():
    report = run_checks("checker/FlawedTool-v0")
    assert report.ok, str(report)
    (finding,) = [f for f in report.findings if f.check == "tools"]
    assert finding.detail == "2 tools (get, keys); the expert made 2 valid calls"


@pytest.mark.parametrize(
    ("flaw", "detail"),
    [
        ("bad-schema", "tool 'get' has an invalid parameters schema"),
        ("same-name", "two tools are named 'get'"),
        (
            "bad-expert-call",
            "turn 0: the expert's call: invalid arguments for get: 'key' is a required property",
        ),
    ],
)
def test_each_tool_flaw_fails_the_tools_check(flaw, detail):
    report = run_checks("checker/FlawedTool-v0", {"flaw": flaw})
    failed = {f.check: f for f in report.failures}
    assert "tools" in failed and detail in failed["tools"].detail, str(report)
