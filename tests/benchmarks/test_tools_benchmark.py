"""benchmarks/tools.py runs end to end (--quick) and prints a row for each measurement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "tools.py"


@pytest.mark.slow
def test_tools_benchmark_smoke():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "operation" not in line]
    names = [row.split("|")[1].strip() for row in rows]
    assert names[0] == "MCP `add` round trip" and "x (" in rows[0]
    assert any(name.startswith("terminal `echo hello`, local") for name in names)
    assert any(name.startswith("search env `search`") for name in names)
    assert any(name.startswith("search env `open`") for name in names)
    assert "BM25 index build" in proc.stdout
