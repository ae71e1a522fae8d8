"""`rollout.pipeline=async` on tiny models: K = 0 is the synchronous trainer, staleness is bounded and
counted, tokens record their versions, and a resumed run restarts the producer from its checkpoint."""

from __future__ import annotations

import pytest
import torch

import palaestra
from palaestra.config import ConfigError, load_config
from palaestra.trainers import make_trainer
from palaestra.trainers.core.tracking import read_metrics
from tests.vowel_env import VowelEnv

LOSS_KEYS = ["reward/mean", "loss/pg", "loss/entropy", "update/grad_norm", "rollout/turns_mean"]


@pytest.fixture(scope="module", autouse=True)
def _envs():
    palaestra.register_env("test/Vowel-v0", VowelEnv, override=True)
    palaestra.register_env("test/VowelMulti-v0", VowelEnv, kwargs={"turns": 3}, max_turns=3, override=True)


@pytest.fixture(scope="module")
def tiny_tok():
    from palaestra.agents.models import build_tiny_tokenizer

    return build_tiny_tokenizer()


def _config(tmp_path, overrides=()):
    return load_config(
        None,
        list(overrides),
        run={"name": "t", "output_dir": str(tmp_path), "steps": 3, "seed": 0},
        envs={"train": [{"id": "test/VowelMulti-v0"}]},
        rollout={"tasks_per_step": 3, "group_size": 3, "max_new_tokens": 8},
        optimizer={"lr": 1e-2},
        eval={"before_training": False},
        logging={"tensorboard": False, "progress": False, "report": False},
        checkpoint={"every": 0},
    )


def _trainer(cfg, tok, seed=0):
    from palaestra.agents.models import build_tiny_model

    return make_trainer(cfg, model=build_tiny_model(tok, seed=seed), tokenizer=tok)


def _train(cfg, tok, **kwargs):
    """Train; returns the history and, per step, the trajectories the update saw."""
    trainer = _trainer(cfg, tok)
    seen = []
    step_batch = trainer.step_batch

    def record(trajectories):
        seen.append(list(trajectories))
        return step_batch(trajectories)

    trainer.step_batch = record
    history = trainer.train(**kwargs)["history"]
    return history, seen


def _key(t):
    return (t.seed, t.group_index, t.sample_index, tuple(t.token_ids), t.reward, tuple(t.logprobs))


def test_k0_reproduces_the_synchronous_trainer(tmp_path, tiny_tok):
    greedy = ["rollout.temperature=0"]
    sync, sync_seen = _train(_config(tmp_path / "sync", greedy), tiny_tok)
    asyn, async_seen = _train(_config(tmp_path / "async", [*greedy, "rollout.pipeline=async"]), tiny_tok)
    assert len(async_seen) == len(sync_seen) == 3
    for step, (a, s) in enumerate(zip(async_seen, sync_seen, strict=True)):
        assert [_key(t) for t in a] == [_key(t) for t in s], f"step {step + 1}"
        assert all(t.token_versions and t.min_version == t.max_version == step for t in a)
    for a, s in zip(asyn, sync, strict=True):
        assert {k: a[k] for k in LOSS_KEYS} == {k: s[k] for k in LOSS_KEYS}
        assert a["async/dropped_groups"] == 0 and a["async/staleness_mean"] == 0
        assert a["async/staleness_groups_0"] == 3
        assert 0 <= a["async/idle_fraction"] <= 1
    assert "async/wait_s" not in sync[0]


def test_staleness_is_bounded_and_versions_recorded(tmp_path, tiny_tok):
    cfg = _config(tmp_path, ["run.steps=4", "rollout.pipeline=async", "rollout.max_staleness=1"])
    history, seen = _train(cfg, tiny_tok)
    assert len(seen) == 4
    for step, trajectories in enumerate(seen):
        assert {t.group_index for t in trajectories} == {0, 1, 2}
        for t in trajectories:
            assert t.error is None
            sampled = [v for v, m in zip(t.token_versions, t.loss_mask, strict=True) if m]
            assert sampled and min(sampled) >= 0 and set(t.token_versions) - set(sampled) <= {-1}
            assert step - t.min_version <= 1, "a group more than K versions old was trained on"
            assert t.max_version <= step
    for h in history:
        assert h["async/staleness_max"] <= 1
        assert h["async/staleness_groups_0"] + h["async/staleness_groups_1"] == 3


def test_drop_mode_drops_and_counts_too_stale_groups(tmp_path, tiny_tok):
    """With stale_groups=drop the producer never waits; K=1 with a queue deeper than a step lets
    groups age past K, and each one trained on is within the bound."""
    cfg = _config(
        tmp_path,
        [
            "run.steps=4",
            "rollout.pipeline=async",
            "rollout.max_staleness=1",
            "rollout.stale_groups=drop",
            "rollout.queue_groups=9",
        ],
    )
    trainer = _trainer(cfg, tiny_tok)
    slow = trainer.update

    def slow_update(batch):  # a slow learner: the producer fills the queue meanwhile
        import time

        time.sleep(1.0)
        return slow(batch)

    trainer.update = slow_update
    history = trainer.train()["history"]
    assert all(h["async/staleness_max"] <= 1 for h in history)
    assert sum(h["async/dropped_groups"] for h in history) > 0


def test_resume_restarts_the_producer_from_the_checkpoint(tmp_path, tiny_tok, monkeypatch):
    greedy = ["rollout.temperature=0", "rollout.pipeline=async", "run.steps=4", "checkpoint.every=2"]
    reference, ref_seen = _train(_config(tmp_path / "full", greedy), tiny_tok)

    cfg = _config(tmp_path / "killed", greedy)
    trainer = _trainer(cfg, tiny_tok)
    original = type(trainer).train_step
    calls = {"n": 0}

    def dies_on_step_3(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return original(self)

    monkeypatch.setattr(type(trainer), "train_step", dies_on_step_3)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    monkeypatch.setattr(type(trainer), "train_step", original)
    assert trainer.pipeline is None, "the producer stops with the run"

    cfg = _config(tmp_path / "killed", greedy)
    resumed = _trainer(cfg, tiny_tok, seed=123)  # other initial weights: all must come from the checkpoint
    seen = []
    step_batch = resumed.step_batch
    resumed.step_batch = lambda ts: (seen.append(list(ts)), step_batch(ts))[1]
    resumed.train(resume=True)
    assert [[_key(t) for t in ts] for ts in seen] == [[_key(t) for t in ts] for ts in ref_seen[2:]]
    assert all(t.min_version >= 2 for ts in seen for t in ts)
    records = [r for r in read_metrics(cfg.run.run_dir) if "reward/mean" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for ref, got in zip(reference, records, strict=True):
        assert {k: got[k] for k in LOSS_KEYS} == {k: ref[k] for k in LOSS_KEYS}


def test_the_producer_copy_never_shares_the_trained_weights(tmp_path, tiny_tok):
    trainer = _trainer(_config(tmp_path, ["rollout.pipeline=async"]), tiny_tok)
    copy = trainer.rollouts.rollout_policy.model
    assert all(
        a.data_ptr() != b.data_ptr()
        for a, b in zip(copy.parameters(), trainer.module.parameters(), strict=True)
    )
    trainer.train()
    for a, b in zip(copy.state_dict().values(), trainer.module.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rollout.max_staleness=2"], "apply only to rollout.pipeline=async"),
        (["rollout.pipeline=async", "rollout.stale_groups=drop"], "would drop every group"),
        (["rollout.pipeline=async", "algorithm.name=cgi"], "not supported by cgi"),
        (
            [
                "rollout.pipeline=async",
                "algorithm.name=arpo",
                "algorithm.filter_tasks=true",
                "rollout.task_pool=4",
            ],
            "filter_tasks",
        ),
        (["rollout.pipeline=async", "agent.backend=vllm"], "needs rollout.ray"),
        (["rollout.pipeline=async", "rollout.self_play=true"], "self_play"),
    ],
)
def test_options_that_do_not_combine_are_one_clear_line(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, overrides)


def test_dynamic_sampling_refills_from_the_queue(tmp_path, tiny_tok):
    """Greedy groups have no reward spread, so DAPO's dynamic sampling drops every one and asks for more:
    the producer starts the refills at the current version (no deadlock under K = 0)."""
    overrides = [
        "rollout.temperature=0",
        "algorithm.dynamic_sampling=true",
        "algorithm.max_sampling_rounds=3",
    ]
    cfg = _config(tmp_path, ["run.steps=2", "rollout.pipeline=async", *overrides])
    history = _trainer(cfg, tiny_tok).train()["history"]
    assert [h["sampling/rounds"] for h in history] == [3, 3]
    assert all(h["async/dropped_groups"] == 0 and h["async/staleness_max"] == 0 for h in history)


def test_lora_runs_async_and_the_copy_gets_the_merged_weights(tmp_path, tiny_tok):
    pytest.importorskip("peft")
    from palaestra.trainers.core.model_setup import merged_model

    cfg = _config(tmp_path, ["run.steps=2", "rollout.pipeline=async", "model.lora={r: 4, alpha: 8}"])
    trainer = _trainer(cfg, tiny_tok)
    trainer.train()
    expected = merged_model(trainer.module, lora=True).state_dict()
    got = trainer.rollouts.rollout_policy.model.state_dict()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
