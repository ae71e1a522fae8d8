"""The env step benchmark runs end to end (few steps) and prints its table, anchors present or not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "env_step.py"


def test_env_step_benchmark_smoke(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "50", "--json", str(tmp_path / "raw.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for game, library in [
        ("Guess-the-number", "palaestra"),
        ("Wordle", "palaestra"),
        ("TicTacToe", "palaestra"),
        ("TicTacToe", "palaestra + info"),
    ]:
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"| {game} | {library} |"))
        assert "n/a" not in row, row
    assert "| TicTacToe | GEM | - | - | - | n/a: GEM has no TicTacToe |" in proc.stdout
    assert (tmp_path / "raw.json").exists()
