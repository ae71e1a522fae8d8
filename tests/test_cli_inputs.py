"""Bad inputs to `palaestra eval`, `demos`, `view` and `compare`: each is one `error:` line (exit 2),
found before a model loads or an episode runs."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from palaestra.cli import app

runner = CliRunner()

EVAL = ["eval", "--env", "Math-Arith-v0", "--agent", "scripted:oracle", "--episodes", "2", "--no-progress"]


def one_error_line(*args: str) -> str:
    """Run the CLI; assert it failed with exit 2 and printed exactly one `error:` line; return the line."""
    result = runner.invoke(app, list(args), env={"COLUMNS": "1000"})
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--episodes", "0", "--episodes=0; it must be >= 1"),
        ("--group-size", "0", "--group-size=0; it must be >= 1"),
        ("--step-timeout", "-1", "--step-timeout=-1.0; it must be > 0 seconds"),
        ("--step-timeout", "0", "--step-timeout=0.0; it must be > 0 seconds"),
        ("--max-new-tokens", "0", "--max-new-tokens=0; it must be >= 1"),
        ("--chunk-size", "0", "--chunk-size=0; it must be >= 1"),
        ("--max-turns", "0", "--max-turns=0; it must be >= 1"),
        ("--temperature", "-0.5", "--temperature=-0.5; it must be >= 0"),
        ("--top-p", "0", "--top-p=0.0; it must be in (0, 1]"),
        ("--top-p", "1.5", "--top-p=1.5; it must be in (0, 1]"),
    ],
)
def test_eval_rejects_bad_numbers_before_running(tmp_path, flag, value, expected):
    line = one_error_line(*EVAL, "--out", str(tmp_path / "out"), flag, value)
    assert expected in line
    assert not (tmp_path / "out").exists()


def test_an_unknown_hf_model_is_one_line_listing_the_aliases():
    line = one_error_line(*EVAL[:4], "hf:nosuchalias")
    assert line == (
        "error: unknown model 'nosuchalias': not an alias (smollm2-135m, tiny-random), "
        "a local folder or a cached hub id"
    )


def test_env_id_and_kwargs_are_checked():
    assert "Did you mean" in one_error_line(
        "eval", "--env", "Math-Arithmetic-v0", "--agent", "scripted:oracle"
    )
    line = one_error_line(*EVAL, "--env-kwarg", "colour=blue")
    assert line.startswith("error: palaestra/Math-Arith-v0 takes no kwarg 'colour'; it takes: source, ")
    assert "colour" in line


@pytest.mark.parametrize("problem", ["file", "under a file", "read-only"])
def test_an_unwritable_out_fails_before_any_episode(tmp_path, problem):
    (tmp_path / "file").write_text("x")
    out = {"file": tmp_path / "file", "under a file": tmp_path / "file" / "sub", "read-only": tmp_path / "ro"}
    if problem == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders: run the tests as a non-root user")
        out[problem].mkdir(mode=0o500)
    expected = {"file": "is a file", "under a file": "lies under the file", "read-only": "cannot be written"}
    line = one_error_line(*EVAL, "--out", str(out[problem]))
    assert f"--out {out[problem]} {expected[problem]}" in line


FILE_BACKED = [
    "palaestra/Math-GSM8K-v0",
    "palaestra/Math-MATH-v0",
    "palaestra/Code-MBPP-v0",
    "palaestra/Code-HumanEval-v0",
    "palaestra/Code-APPS-v0",
]


@pytest.mark.parametrize("env_id", FILE_BACKED)
def test_file_backed_envs_need_an_existing_path(tmp_path, env_id):
    line = one_error_line("eval", "--env", env_id, "--agent", "scripted:oracle")
    assert f"{env_id} needs path=..." in line
    missing = tmp_path / "no.jsonl"
    line = one_error_line(
        "eval", "--env", env_id, "--agent", "scripted:oracle", "--env-kwarg", f"path={missing}"
    )
    assert (
        line.startswith(f"error: {env_id} with kwargs") and f"records file not found: path={missing}" in line
    )
    line = one_error_line("demos", "--env", env_id, "--out", str(tmp_path / "d"))
    assert f"{env_id} needs path=..." in line


def test_demos_checks_its_inputs_first(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "--episodes=0" in one_error_line("demos", "--env", "Math-Arith-v0", "--episodes", "0")
    line = one_error_line("demos", "--env", "Math-Arith-v0", "--out", str(tmp_path / "file"))
    assert "is a file" in line


def test_opponents_are_checked_before_the_agent_loads():
    line = one_error_line(
        "eval", "--env", "Game-TicTacToe-v0", "--agent", "scripted:random", "--opponent", "optimall"
    )
    assert "--opponent 'optimall'" in line and "'optimal'" in line
    line = one_error_line(
        "eval", "--env", "Game-TicTacToe-v0", "--agent", "scripted:random", "--opponent", "hf:nosuchalias"
    )
    assert "unknown model 'nosuchalias'" in line
    line = one_error_line(*EVAL[:4], "scripted:random", "--opponent", "optimal")
    assert "is not a multi-player game" in line


def test_a_suite_is_checked_env_by_env_before_running(tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text(
        "name: bad\nenvs:\n  - id: palaestra/Math-Arith-v0\n    episodes: 2\n"
        "  - id: palaestra/Math-GSM8K-v0\n    episodes: 2\n"
    )
    out = tmp_path / "out"
    line = one_error_line("eval", "--suite", str(suite), "--agent", "scripted:oracle", "--out", str(out))
    assert "palaestra/Math-GSM8K-v0 needs path=..." in line
    assert not out.exists(), "nothing ran, nothing was written"
    (tmp_path / "file").write_text("x")
    suite.write_text("name: ok\nenvs:\n  - id: palaestra/Math-Arith-v0\n    episodes: 2\n")
    line = one_error_line(
        "eval", "--suite", str(suite), "--agent", "scripted:oracle", "--out", str(tmp_path / "file")
    )
    assert "is a file" in line


def test_view_says_when_there_is_nothing_to_view(tmp_path):
    result = runner.invoke(app, [*EVAL, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (tmp_path / "trajectories.parquet").unlink()
    line = one_error_line("view", str(tmp_path))
    assert line.startswith(f"error: nothing to view in {tmp_path}: it holds no episodes")


def test_compare_names_a_corrupt_results_file(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text("{not json")
    line = one_error_line("compare", str(bad))
    assert line.startswith(f"error: {bad} is not valid JSON")
    bad.write_text(json.dumps({"schema_version": 1, "kind": "suite"}))
    line = one_error_line("compare", str(tmp_path))
    assert line.startswith(f"error: {tmp_path}: malformed results file")
