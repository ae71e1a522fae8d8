"""`palaestra new-env NAME`: the package it writes passes `envs check`, its own tests, and trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palaestra.cli import app

runner = CliRunner()
ROOT = Path(__file__).parents[1]


def _new_env(tmp_path, name, monkeypatch):
    """Write the package `name` under tmp_path and put it on the import path, as running in its folder does."""
    result = runner.invoke(app, ["new-env", name, "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / name
    monkeypatch.syspath_prepend(str(folder))
    return folder, result.output


def test_new_env_writes_a_package_that_passes_the_checker_and_its_tests(tmp_path, monkeypatch):
    folder, output = _new_env(tmp_path, "word-game", monkeypatch)
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert files == {
        "pyproject.toml",
        "README.md",
        "configs/train.yaml",
        "tests/test_env.py",
        "word_game/__init__.py",
        "word_game/env.py",
    }
    assert "palaestra envs check word_game:word_game/WordGame-v0" in output
    assert (
        '[project.entry-points."palaestra.envs"]\nword_game = "word_game"'
        in (folder / "pyproject.toml").read_text()
    )
    check = runner.invoke(app, ["envs", "check", "word_game:word_game/WordGame-v0", "--json"])
    assert check.exit_code == 0, check.output
    report = json.loads(check.stdout)
    assert report["ok"] and len(report["findings"]) == 9  # every check, tools included
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0 and "2 passed" in tests.stdout, tests.stdout + tests.stderr


@pytest.mark.slow
def test_new_env_trains_two_steps_out_of_the_box(tmp_path, monkeypatch):
    folder, _ = _new_env(tmp_path, "reverse-words", monkeypatch)
    monkeypatch.chdir(folder)  # run.output_dir is runs/, beside the package, as the config says
    overrides = [
        "model.name=tiny-random",  # the config's model is the embedded SmolLM2; a tiny one is enough here
        "run.steps=2",
        "rollout.tasks_per_step=2",
        "rollout.group_size=2",
        "envs.eval=[{id: reverse_words/ReverseWords-v0, episodes: 2}]",
        "logging.report=false",
    ]
    result = runner.invoke(app, ["train", "configs/train.yaml", *overrides], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (folder / "runs" / "reverse_words" / "metrics.jsonl").open()]
    assert [r["step"] for r in records if "reward/mean" in r] == [1, 2]
    assert "eval/ReverseWords-v0/success" in result.output


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("9lives", "use letters, digits, '-' and '_', starting with a letter"),
        ("json", "a module named 'json' is already importable here"),
        ("class", "'class' is a Python keyword"),
        ("taken", "already exists and is not an empty folder"),
    ],
)
def test_new_env_bad_names_are_one_line_and_write_nothing(tmp_path, name, message):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["new-env", name, "--dir", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
