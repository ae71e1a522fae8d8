"""The web env benchmark runs end to end (one tiny workload) and prints its side-by-side tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "browser_env.py"


@pytest.mark.slow
def test_browser_env_benchmark_smoke(tmp_path):
    pytest.importorskip("playwright")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    raw = tmp_path / "raw.json"
    args = ["--tasks", "ClickButton,Login", "--episodes", "2", "--concurrency", "2", "--json", str(raw)]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for row in (
        "| bare Playwright loop (anchor) | text |",
        "| palaestra WebEnv | gui |",
        "| palaestra (RolloutRunner) | text | 2 |",
    ):
        assert row in proc.stdout, proc.stdout
    numbers = json.loads(raw.read_text())
    assert numbers["latency_text"]["palaestra"]["p50_ms"] > 0
    assert numbers["memory"]["per_episode_mib"] > 0
