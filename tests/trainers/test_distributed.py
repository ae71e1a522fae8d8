"""Data-parallel training on CPU with gloo: 2 processes follow the 1-process loss curve, and checkpoints
resume across world sizes. One torchrun launch serves every test here (see dist_worker.py).

Why the tolerances hold on any x86-64 CPU: every run trains the tiny model in float64 and every layout
computes the same micro-batches with the same passes (dist_worker.py); what the layout changes is only
the order in which gradients are summed (DDP's all-reduce, FSDP2's reduce-scatter). A reordered float64
sum of O(1) terms differs by a few ulps, |delta g| <= 1e-15. Adam's step lr * g / (|g| + eps) moves by at
most lr * |delta g| / eps per optimizer step, so after the K = 8 optimizer steps of a 4-step run the
weights differ by at most K * lr * 1e-15 / eps = 8 * 5e-3 * 1e-7 = 4e-9 (measured: 0 for DDP, 2e-16 for
FSDP2); the logged losses, smooth in the weights, differ relatively by less than 1e-7.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from palaestra.trainers.core.distributed import DistContext, shard_range
from palaestra.trainers.core.tracking import read_metrics

_WORKER = Path(__file__).with_name("dist_worker.py")
WEIGHT_ATOL = 1e-8  # > the 4e-9 bound above
METRIC_REL = 1e-7
KEYS = ["reward/mean", "loss/pg", "loss/kl", "loss/entropy", "update/grad_norm", "rollout/logprob_mismatch"]


def _worker():
    spec = importlib.util.spec_from_file_location("dist_worker", _WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy_checkpoint(src_run: Path, step: int, dst_run: Path) -> None:
    name = f"step-{step:06d}"
    shutil.copytree(src_run / "checkpoints" / name, dst_run / "checkpoints" / name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run dirs: ref (1 process), ddp / fsdp (2 processes), resumes across world sizes."""
    root = tmp_path_factory.mktemp("dist")
    worker = _worker()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun's workers: same kernels, same float summation order
    try:
        worker.train(root / "ref")
        worker.train(root / "ref-lora", lora=True)
        _copy_checkpoint(root / "ref", 2, root / "ddp-from-1")
        jobs = [
            {"run_dir": str(root / "ddp"), "strategy": "ddp", "steps": 4, "resume": False},
            {"run_dir": str(root / "fsdp"), "strategy": "fsdp", "steps": 4, "resume": False},
            {"run_dir": str(root / "ddp-from-1"), "strategy": "ddp", "steps": 4, "resume": True},
            {"run_dir": str(root / "ddp-lora"), "strategy": "ddp", "steps": 4, "resume": False, "lora": True},
        ]
        (root / "jobs.json").write_text(json.dumps(jobs))
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        done = subprocess.run(
            [*launch, str(_WORKER), str(root / "jobs.json")], capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
        _copy_checkpoint(root / "fsdp", 2, root / "one-from-fsdp")
        worker.train(root / "one-from-fsdp", resume=True)
    finally:
        torch.set_num_threads(threads)
    return root


def _curve(run_dir: Path) -> list[dict]:
    return [r for r in read_metrics(run_dir) if "reward/mean" in r]


def _assert_same_curve(got: list[dict], expected: list[dict]) -> None:
    assert [r["step"] for r in got] == [r["step"] for r in expected]
    for want, have in zip(expected, got, strict=True):
        for key in KEYS:
            assert have[key] == pytest.approx(want[key], rel=METRIC_REL, abs=1e-12), (want["step"], key)


@pytest.mark.slow  # the module fixture: 3 one-process runs and a torchrun of 4 two-process runs (~100 s, busy box)
@pytest.mark.parametrize(
    ("strategy", "reference"), [("ddp", "ref"), ("fsdp", "ref"), ("ddp-lora", "ref-lora")]
)
def test_two_processes_follow_the_single_process_loss_curve(runs, strategy, reference):
    reference = _curve(runs / reference)
    assert len({r["reward/mean"] for r in reference}) == 4, "the policy must change between steps"
    curve = _curve(runs / strategy)
    _assert_same_curve(curve, reference)  # rank 0 alone logged: each step exactly once
    assert all(r["update/micro_batches"] >= 3 for r in curve), "too few micro-batches to split unevenly"
    final = [r for r in read_metrics(runs / strategy) if any(k.startswith("final/") for k in r)]
    assert len(final) == 1 and "final/eval/DistVowel-v0/reward" in final[0]


@pytest.mark.slow  # the module fixture: 3 one-process runs and a torchrun of 4 two-process runs (~100 s, busy box)
def test_a_two_process_checkpoint_resumes_in_one_process(runs):
    saved = runs / "fsdp" / "checkpoints" / "step-000002"
    assert sorted(p.name for p in saved.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    _assert_same_curve(_curve(runs / "one-from-fsdp"), _curve(runs / "ref")[2:])


@pytest.mark.slow  # the module fixture: 3 one-process runs and a torchrun of 4 two-process runs (~100 s, busy box)
def test_a_one_process_checkpoint_resumes_in_two_processes(runs):
    _assert_same_curve(_curve(runs / "ddp-from-1"), _curve(runs / "ref")[2:])


@pytest.mark.slow  # the module fixture: 3 one-process runs and a torchrun of 4 two-process runs (~100 s, busy box)
def test_the_export_is_a_plain_hf_folder_with_the_consolidated_weights(runs):
    from transformers import AutoModelForCausalLM

    def load(folder: Path) -> dict[str, torch.Tensor]:
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float64).state_dict()

    exported = load(runs / "fsdp" / "final")
    # exact by construction: the export is the FSDP run's last checkpoint, consolidated in one process
    trainer = _worker().make(runs / "fsdp", strategy="fsdp")
    assert trainer.resume(runs / "fsdp" / "checkpoints" / "step-000004")
    consolidated = trainer.module.state_dict()
    assert exported.keys() == consolidated.keys()
    for name, tensor in consolidated.items():
        assert torch.equal(exported[name], tensor), name
    # and it is the 1-process model, up to the float64 bound in the module docstring
    reference = load(runs / "ref" / "final")
    assert exported.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(exported[name], tensor, atol=WEIGHT_ATOL, rtol=0, msg=name)
    assert not list((runs / "fsdp").glob(".tmp-*")), "a temporary export folder was left behind"


@pytest.mark.slow  # the module fixture: 3 one-process runs and a torchrun of 4 two-process runs (~100 s, busy box)
def test_accelerate_launch_runs_the_same_training(runs, tmp_path):
    """`accelerate launch --multi_gpu` starts torchrun's workers: on CPU they meet over gloo."""
    jobs = tmp_path / "jobs.json"
    jobs.write_text(
        json.dumps([{"run_dir": str(tmp_path / "acc"), "strategy": "ddp", "steps": 2, "resume": False}])
    )
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    done = subprocess.run([*launch, str(_WORKER), str(jobs)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert len(list((tmp_path / "acc" / "checkpoints" / "step-000002").glob("*.distcp"))) == 2
    _assert_same_curve(_curve(tmp_path / "acc"), _curve(runs / "ref")[:2])


def test_shards_cover_every_task_once_in_order():
    for n in (0, 1, 5, 8):
        for world in (1, 2, 3):
            spans = [shard_range(n, DistContext(rank, world)) for rank in range(world)]
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
            assert max(e - s for s, e in spans) - min(e - s for s, e in spans) <= 1
