"""The sandbox benchmark runs end to end (a few calls per row) and prints its side-by-side table."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "sandbox.py"


@pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install bubblewrap (make sysdeps)"
)
def test_sandbox_benchmark_smoke(tmp_path):
    args = [
        "--runs",
        "5",
        "--gap-ms",
        "0",
        "--jobs",
        "8",
        "--concurrency",
        "4",
        "--json",
        str(tmp_path / "raw.json"),
    ]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = proc.stdout
    assert "| backend | p50 ms |" in table
    for row in (
        "| bare subprocess (anchor) | ",
        "| local (bubblewrap), warm | ",
        "| local (bubblewrap), cold | ",
    ):
        line = next(line for line in table.splitlines() if line.startswith(row))
        assert "skipped" not in line, line
    assert "| docker |" in table  # measured, or skipped with the reason
    assert (tmp_path / "raw.json").exists()
