"""Training on a GPU: bf16 autocast against fp32, the shared-prefix pass, FSDP2 in one process, and a
checkpoint written on the GPU resumed on the CPU. References are CPU float32 computations of the same
trajectories from the same initial weights."""

from __future__ import annotations

import asyncio
import socket

import pytest
import torch
import torch.distributed as dist

import palaestra
from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer
from palaestra.config import load_config
from palaestra.trainers import make_trainer
from palaestra.trainers.core.batching import collate
from palaestra.trainers.core.distributed import DistContext, full_model_state, wrap_model
from palaestra.trainers.core.tracking import read_metrics
from tests.gpu import DEVICE, GPU
from tests.trainers.test_shared_prefix import _logp_entropy, _rows
from tests.vowel_env import VowelEnv

pytestmark = GPU


@pytest.fixture(scope="module", autouse=True)
def _envs():
    palaestra.register_env("test/Vowel-v0", VowelEnv, override=True)


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def _trainer(tmp_path, tok, device, precision="fp32", overrides=(), seed=0):
    cfg = load_config(
        None,
        [f"model.device={device}", f"model.precision={precision}", *overrides],
        run={"name": "t", "output_dir": str(tmp_path), "steps": 1, "seed": 0},
        envs={"train": [{"id": "test/Vowel-v0"}], "eval": [{"id": "test/Vowel-v0", "episodes": 4}]},
        rollout={"tasks_per_step": 4, "group_size": 4, "max_new_tokens": 12},
        optimizer={"lr": 1e-3},
        eval={"before_training": False},
        # no report.html: it needs matplotlib, which the GPU machine lacks and which is no GPU path
        logging={"tensorboard": False, "progress": False, "report": False},
        checkpoint={"every": 0},
    )
    return make_trainer(cfg, model=build_tiny_model(tok, seed=seed).float(), tokenizer=tok)


def test_a_bf16_step_on_the_device_matches_fp32(tmp_path, tok):
    """Two epochs over one fixed rollout batch (so the second pass's ratios depend on the first update)
    with an entropy bonus: loss parts and gradient norm in bf16 autocast on the device against fp32."""
    opts = ["algorithm.epochs=2", "algorithm.entropy_coef=0.01"]
    reference = _trainer(tmp_path / "cpu", tok, "cpu", "fp32", opts)
    trajectories, _ = asyncio.run(reference.collect(reference.sampler.sample(4)))

    def update(trainer):
        batch, _ = trainer.step_batch(trajectories)
        return trainer.update(batch)

    want = update(reference)
    fp32 = update(_trainer(tmp_path / "fp32", tok, DEVICE, "fp32", opts))
    bf16 = update(_trainer(tmp_path / "bf16", tok, DEVICE, "bf16", opts))
    # float32 on the device against float32 on the CPU: the same maths in other kernel orders (~1e-6
    # relative per value, two Adam steps at lr 1e-3 cannot amplify it beyond ~1e-5)
    for key in ("loss/entropy", "update/grad_norm"):
        assert fp32[key] == pytest.approx(want[key], rel=1e-4), key
    assert fp32["loss/pg"] == pytest.approx(want["loss/pg"], rel=1e-3, abs=1e-6)
    # bf16 autocast keeps 8 mantissa bits in matmul inputs (relative rounding 2^-9 = 0.2% per value):
    # the entropy, a mean over ~200 tokens of sums over the vocabulary, moves by well under 1%; the
    # gradient norm by a few %. 2% and 10% leave room for the rounding, not for a wrong cast (fp16
    # overflow, a bf16 loss reduction or a missing upcast of the logits moves them by far more)
    assert bf16["loss/entropy"] == pytest.approx(want["loss/entropy"], rel=2e-2)
    assert bf16["update/grad_norm"] == pytest.approx(want["update/grad_norm"], rel=1e-1)
    # the sampler's fp32 logprobs against the trainer's bf16 ones: ~1e-2 nats at most per token
    assert bf16["rollout/logprob_mismatch"] < 5e-2
    # the clipped surrogate's value sits near 0 (ratios ~1, group-normalised advantages): compare it on
    # the scale of its advantages (|adv| ~ 1), where bf16's logprob noise of ~1e-2 bounds the gap
    assert abs(bf16["loss/pg"] - want["loss/pg"]) < 2e-2
    assert all(torch.isfinite(torch.tensor(v)) for v in bf16.values())


def test_the_shared_prefix_pass_equals_the_plain_pass_on_the_device():
    torch.manual_seed(0)
    model = build_tiny_model(build_tiny_tokenizer(), seed=0).float().to(DEVICE)
    rows = _rows()
    plain = collate(rows, pad_id=0).to(DEVICE)
    shared = collate(rows, pad_id=0, share_prefix=True).to(DEVICE)
    assert shared.prefix is not None and shared.prefix.prefix_ids.shape[0] == 3
    outputs, grads = [], []
    for batch in (plain, shared):
        model.zero_grad()
        logp, ent = _logp_entropy(model, batch)
        (logp.sum() + 0.1 * ent.sum()).backward()
        outputs.append((logp.detach().cpu(), ent.detach().cpu()))
        grads.append({n: p.grad.cpu() for n, p in model.named_parameters() if p.grad is not None})
    # as tests/trainers/test_shared_prefix.py: float32 reassociation only, here in CUDA's kernels
    # (attention over a copied prompt cache vs one pass); 1e-5 is >10x that noise, a wrong position
    # id or cache copy moves logprobs by >1e-2
    torch.testing.assert_close(outputs[1][0], outputs[0][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outputs[1][1], outputs[0][1], atol=1e-5, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.fixture
def one_process_group():
    """A process group of one rank (nccl on CUDA, gloo on the CPU), torn down after the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = "nccl" if DEVICE == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


class _Sharded(DistContext):
    """One rank that still takes the FSDP2 path (`wrap_model` leaves a world of one unwrapped)."""

    @property
    def enabled(self) -> bool:
        return True


def _step(model, batch):
    """One forward/backward/AdamW step on `batch`'s logprobs; returns the loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    logp, _ = _logp_entropy(model, batch)
    loss = -logp.sum() / batch.loss_mask.sum()
    loss.backward()
    opt.step()
    return loss.item()


def test_an_fsdp2_step_in_one_process_equals_the_plain_step(one_process_group):
    rows = _rows()
    batch = collate(rows, pad_id=0).to(DEVICE)
    plain = build_tiny_model(build_tiny_tokenizer(), seed=0).float().to(DEVICE)
    sharded = build_tiny_model(build_tiny_tokenizer(), seed=0).float().to(DEVICE)
    device = torch.device(DEVICE, 0) if DEVICE == "cuda" else torch.device(DEVICE)
    wrapped = wrap_model(sharded, _Sharded(strategy="fsdp"), device)
    assert type(wrapped).__name__.startswith("FSDP"), type(wrapped)  # fully_shard swapped its class
    want, got = _step(plain, batch), _step(wrapped, batch)
    # a world of one: FSDP2's all-gather and reduce-scatter copy, so only kernel order differs (~1e-6)
    assert got == pytest.approx(want, rel=1e-5)
    state = full_model_state(wrapped)
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(state[name].cpu(), value.cpu(), atol=1e-6, rtol=1e-5, msg=name)


def test_a_checkpoint_written_on_the_device_resumes_on_the_cpu(tmp_path, tok):
    opts = ["run.steps=1", "checkpoint.every=1"]
    on_device = _trainer(tmp_path, tok, DEVICE, "fp32", opts)
    on_device.train()
    trained = {n: p.detach().cpu().clone() for n, p in on_device.model.state_dict().items()}

    resumed = _trainer(tmp_path, tok, "cpu", "fp32", ["run.steps=2", "checkpoint.every=1"], seed=123)
    seen = {}
    original = type(resumed).train_step

    def first_step(self):
        seen.setdefault("weights", {n: p.detach().clone() for n, p in self.model.state_dict().items()})
        seen.setdefault("devices", {p.device.type for p in self.model.parameters()})
        return original(self)

    type(resumed).train_step = first_step
    try:
        resumed.train(resume=True)
    finally:
        type(resumed).train_step = original
    assert seen["devices"] == {"cpu"}
    for name, value in trained.items():  # the checkpoint round trip is exact
        assert torch.equal(seen["weights"][name], value), name
    records = [r for r in read_metrics(resumed.config.run.run_dir) if "reward/mean" in r]
    assert [r["step"] for r in records] == [1, 2]
