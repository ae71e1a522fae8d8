"""The GRPO-vs-TRL benchmark runs end to end (one tiny step each) and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "grpo_vs_trl.py"


@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    pytest.importorskip("trl")
    args = ["--steps", "1", "--warmup", "0", "--prompts-per-step", "2", "--group-size", "2"]
    args += ["--max-new-tokens", "8", "--json", str(tmp_path / "raw.json")]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| steps/s" in proc.stdout and "| peak RSS, training MiB" in proc.stdout
    assert (tmp_path / "raw.json").exists()
