"""The shipped tool configs: the tools-core suite (the oracle solves all of it) and configs/tool-search.yaml
(shortened, it trains a step through the CLI)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from palaestra.agents.spec import make_policy
from palaestra.cli import app
from palaestra.evaluation.suite_run import run_suite
from palaestra.evaluation.suites import load_suite

runner = CliRunner()


def test_tools_core_is_part_of_all():
    keys = [e.key for e in load_suite("all").envs]
    assert [e.key for e in load_suite("tools-core").envs] == keys[-len(load_suite("tools-core").envs) :]
    assert {e.id.split("/")[1].split("-v0")[0] for e in load_suite("tools-core").envs} == {
        "Tool-Search",
        "Tool-Terminal",
        "Tool-MCP",
    }


@pytest.mark.slow
def test_the_oracle_solves_every_tools_core_episode(tmp_path):
    suite = load_suite("tools-core")
    results = run_suite(suite, [make_policy("scripted:oracle")], tmp_path)
    oracle = results["agents"]["scripted:oracle"]
    assert oracle["aggregate"]["score"] == 1.0, json.dumps(oracle["envs"], indent=1)[:3000]
    assert sum(env["summary"]["episodes"] for env in oracle["envs"].values()) == sum(
        e.episodes for e in suite.envs
    )


@pytest.mark.slow
def test_tool_search_config_trains_a_step_with_its_rubric(tmp_path):
    """configs/tool-search.yaml, shortened, with the tiny random model in SmolLM2's place: tool episodes
    (declarations in the system message, tool messages) and the rubric's reward feed one GRPO step."""
    overrides = [
        f"run.output_dir={tmp_path}",
        "model.name=tiny-random",
        "run.steps=1",
        "rollout.tasks_per_step=2",
        "rollout.group_size=2",
        "rollout.max_new_tokens=24",
        "envs.eval=[{id: palaestra/Tool-Search-v0-easy, kwargs: {max_turns: 2}, episodes: 2}]",
        "logging.progress=false",
    ]
    result = runner.invoke(app, ["train", "configs/tool-search.yaml", *overrides], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    run = tmp_path / "tool-search"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "reward/mean" in r] == [1]
    assert "eval/Tool-Search-v0-easy/success" in result.output
