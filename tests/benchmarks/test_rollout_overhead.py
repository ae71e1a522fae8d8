"""The rollout overhead benchmark runs end to end on the hf backend (tiny model, one repeat)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "rollout_overhead.py"


@pytest.mark.slow
def test_rollout_overhead_smoke(tmp_path):
    out = tmp_path / "r.json"
    argv = [sys.executable, str(SCRIPT), "--backends", "hf", "--model", "tiny-random", "--episodes", "3"]
    argv += ["--max-new-tokens", "4", "--repeats", "1", "--json", str(out), "--cache", str(tmp_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| overhead, wall time |" in proc.stdout
    result = json.loads(out.read_text())["hf"]
    assert result["episodes"] == 3 and result["errors"] == 0
    assert result["raw_tokens"] == result["palaestra_tokens"] > 0, "both replay the same greedy work"
    raw_calls, palaestra_calls = result["generate_calls"]
    assert raw_calls == palaestra_calls, "the hf batcher groups each turn's requests like the replay"
    assert 0 < result["orchestration_ms_per_turn"] < 1000
    assert (
        result["overhead_wall_pct_range"][0]
        <= result["overhead_wall_pct"]
        <= result["overhead_wall_pct_range"][1]
    )
