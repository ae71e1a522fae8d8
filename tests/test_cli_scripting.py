"""Output for scripts: through a pipe, listings print whole ids one row per line, and `--json` parses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import palaestra
from palaestra.evaluation.suites import list_suites

ROOT = Path(__file__).parents[1]
REVERSE = "tests.gym_reverse_env:mine/Reverse-v0"


def _palaestra(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the CLI with stdout and stderr piped (not a terminal), as a script would; COLUMNS is narrow."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "40"}
    result = subprocess.run(
        [sys.executable, "-m", "palaestra.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,  # stdout and stderr are pipes, not a terminal
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_envs_list_in_a_pipe_prints_one_whole_id_per_line():
    lines = _palaestra("envs", "list").stdout.splitlines()
    expected = [e["id"] for e in json.loads(_palaestra("envs", "list", "--json").stdout)]
    assert [line.split("\t")[0] for line in lines] == expected and len(lines) > 20
    bundled = next(line for line in lines if line.startswith("palaestra/Code-Bundled-v0\t"))
    assert bundled.split("\t")[1:4] == ["Code", "1", "[0, 1]"]


def test_envs_list_and_show_json():
    listed = json.loads(_palaestra("envs", "list", "--family", "Math", "--json").stdout)
    assert {e["id"] for e in listed} >= {"palaestra/Math-Arith-v0", "palaestra/Math-GSM8K-v0"}
    assert {e["family"] for e in listed} == {"Math"}
    arith = next(e for e in listed if e["id"] == "palaestra/Math-Arith-v0")
    assert arith["reward_range"] == [0.0, 1.0] and arith["unavailable"] is None
    shown = json.loads(_palaestra("envs", "show", "Math-Arith-v0", "--seed", "3", "--json").stdout)
    assert shown["id"] == "palaestra/Math-Arith-v0" and shown["first_observation"]["seed"] == 3
    assert "\\boxed" in shown["system_prompt"]
    env = palaestra.make("palaestra/Math-Arith-v0")
    assert shown["first_observation"]["observation"] == env.reset(seed=3)[0]


def test_suites_list_in_a_pipe_and_as_json():
    lines = _palaestra("suites", "list").stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == list_suites()
    suites = json.loads(_palaestra("suites", "list", "--json").stdout)
    math = next(s for s in suites if s["name"] == "math-core")
    assert "palaestra/Math-Arith-v0" in math["envs"] and math["description"]


def test_eval_and_compare_print_json_to_stdout(tmp_path):
    """Piped stdout holds the JSON alone: the progress bar and the file paths stay off it."""
    out = tmp_path / "oracle"
    result = _palaestra(
        "eval", "--env", REVERSE, "--agent", "scripted:oracle", "--episodes", "3", "--out", str(out), "--json"
    )
    data = json.loads(result.stdout)
    assert data["env_id"] == "mine/Reverse-v0" and data["summary"]["success_rate"] == 1.0
    assert data["episodes"]["seed"] == [0, 1, 2] and str(out / "results.json") in result.stderr
    board = json.loads(_palaestra("compare", str(out), str(out / "results.json"), "--json").stdout)
    assert board["envs"] == ["Reverse-v0"] and [row["rank"] for row in board["rows"]] == [1, 2]
    assert board["rows"][0]["score"] == 1.0 and board["rows"][1]["vs_leader"]["diff"] == pytest.approx(0.0)


def test_eval_suite_prints_json_to_stdout(tmp_path):
    suite = tmp_path / "mine.yaml"
    suite.write_text(f"name: mine\nenvs:\n  - {{id: '{REVERSE}', episodes: 2}}\n")
    args = ["eval", "--suite", str(suite), "--agent", "scripted:oracle", "--agent", "scripted:random"]
    result = _palaestra(*args, "--out", str(tmp_path / "out"), "--json")
    data = json.loads(result.stdout)
    assert set(data["results"]["agents"]) == {"scripted:oracle", "scripted:random"}
    assert [row["agent"] for row in data["leaderboard"]["rows"]] == ["scripted:oracle", "scripted:random"]
    assert "scripted:oracle on Reverse-v0: success 100.0%" in result.stderr
