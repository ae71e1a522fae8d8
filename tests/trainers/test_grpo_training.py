"""GRPO end to end on tiny models: it learns, resumes exactly, and its options run."""

from __future__ import annotations

import math

import pytest
import torch

import palaestra
from palaestra.config import load_config
from palaestra.trainers import make_trainer
from palaestra.trainers.core.tracking import read_metrics
from tests.vowel_env import VowelEnv


@pytest.fixture(scope="module", autouse=True)
def _envs():
    palaestra.register_env("test/Vowel-v0", VowelEnv, override=True)
    palaestra.register_env("test/VowelMulti-v0", VowelEnv, kwargs={"turns": 3}, max_turns=3, override=True)


@pytest.fixture(scope="module")
def tiny_tok():
    from palaestra.agents.models import build_tiny_tokenizer

    return build_tiny_tokenizer()


def _config(tmp_path, overrides=(), env="test/Vowel-v0"):
    return load_config(
        None,
        list(overrides),
        run={"name": "t", "output_dir": str(tmp_path), "steps": 4, "seed": 0},
        envs={"train": [{"id": env}], "eval": [{"id": env, "episodes": 8}]},
        rollout={"tasks_per_step": 4, "group_size": 4, "max_new_tokens": 12},
        optimizer={"lr": 1e-2},
        eval={"before_training": False},
        logging={"tensorboard": False, "progress": False},
        checkpoint={"every": 0},
    )


def _trainer(cfg, tok, seed=0, dtype=torch.float32):
    from palaestra.agents.models import build_tiny_model

    return make_trainer(cfg, model=build_tiny_model(tok, seed=seed).to(dtype), tokenizer=tok)


def test_grpo_learns_a_reward_it_can_only_get_by_changing_its_outputs(tmp_path, tiny_tok):
    cfg = _config(
        tmp_path,
        ["run.steps=16", "rollout.tasks_per_step=8", "rollout.group_size=8", "rollout.max_new_tokens=16"],
    )
    history = _trainer(cfg, tiny_tok).train()["history"]
    start = sum(h["reward/mean"] for h in history[:2]) / 2
    end = sum(h["reward/mean"] for h in history[-2:]) / 2
    assert start < 0.45, f"a random tiny model should start near the vowel base rate, got {start:.3f}"
    assert end > start + 0.3, f"reward went from {start:.3f} to {end:.3f}"


def test_killed_run_resumes_to_the_same_metrics(tmp_path, tiny_tok, monkeypatch):
    keys = ["reward/mean", "loss/pg", "update/grad_norm", "loss/entropy"]
    full = _config(tmp_path / "full", ["run.steps=4", "checkpoint.every=2"])
    reference = _trainer(full, tiny_tok).train()["history"]

    cfg = _config(tmp_path / "killed", ["run.steps=4", "checkpoint.every=2"])
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

    resumed = _trainer(cfg, tiny_tok, seed=123)  # different init: everything must come from the checkpoint
    resumed.train(resume=True)
    records = [r for r in read_metrics(cfg.run.run_dir) if "reward/mean" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    # exact by construction: the same process replays the same computations from restored weights,
    # optimizer moments and RNG states, so the resumed steps are bit-identical on any CPU
    for ref, got in zip(reference, records, strict=True):
        assert {k: got[k] for k in keys} == {k: ref[k] for k in keys}, got["step"]


def test_micro_batch_size_does_not_change_the_update(tmp_path, tiny_tok):
    """One micro-batch or many: the same update, up to the order in which gradients are summed.

    In float32 that order alone can move a weight by up to a whole Adam step (lr): Adam divides a
    near-zero gradient by its own magnitude, and float32 reordering noise (~1e-7 of the summands) is
    far above eps = 1e-8. In float64 the noise of a reordered sum of O(1) gradient terms is
    |delta g| <= 1e-15, and Adam's step lr * g / (|g| + eps) moves by at most lr * |delta g| / eps, so
    after K = 2 optimizer steps the weights agree within K * lr * 1e-7 = 2e-9 on any CPU. The shared-
    prefix pass is off: whether a micro-batch takes it depends on its rows, which would make this a
    comparison of two passes (their equality is `test_shared_prefix.py`'s, before any optimizer step).
    """
    big, small = (
        _trainer(
            _config(
                tmp_path / name,
                ["run.steps=2", f"optimizer.micro_batch_tokens={n}", "optimizer.share_prefix=false"],
            ),
            tiny_tok,
            dtype=torch.float64,
        )
        for name, n in (("a", 100000), ("b", 64))
    )
    hb, hs = big.train()["history"], small.train()["history"]
    assert hs[0]["update/micro_batches"] > hb[0]["update/micro_batches"] == 1
    for a, b in zip(hb, hs, strict=True):
        assert a["reward/mean"] == b["reward/mean"]
        assert a["update/grad_norm"] == pytest.approx(b["update/grad_norm"], rel=1e-9)
    for pa, pb in zip(big.model.parameters(), small.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, atol=1e-8, rtol=0)


@pytest.mark.parametrize(
    "overrides",
    [
        ["algorithm.kl_coef=0.05", "algorithm.entropy_coef=0.001", "algorithm.dual_clip=3.0"],
        ["algorithm.aggregation=seq-mean-token-sum-norm", "algorithm.scale_by_std=false"],
        ["algorithm.aggregation=seq-mean-token-mean", "algorithm.epochs=2", "algorithm.mini_batches=2"],
        ["algorithm.dynamic_sampling=true", "algorithm.overlong=penalty", "algorithm.overlong_buffer=4"],
        ["algorithm.starpo_s_keep_ratio=0.5", "algorithm.overlong=filter", "model.precision=bf16"],
    ],
)
def test_options_run(tmp_path, tiny_tok, overrides):
    history = _trainer(_config(tmp_path, ["run.steps=2", *overrides]), tiny_tok).train()["history"]
    last = history[-1]
    assert all(
        torch.isfinite(torch.tensor(v)) for k, v in last.items() if k.startswith(("loss/", "update/grad"))
    )
    if "algorithm.kl_coef=0.05" in overrides:
        assert "loss/kl" in last and "loss/entropy" in last
    if "algorithm.starpo_s_keep_ratio=0.5" in overrides:
        assert last["sampling/starpo_s_kept_groups"] == 2
    if "algorithm.dynamic_sampling=true" in overrides:
        assert last["sampling/rounds"] >= 1


def test_multi_turn_episodes_train_on_assistant_tokens_only(tmp_path, tiny_tok):
    trainer = _trainer(_config(tmp_path, ["run.steps=1"], env="test/VowelMulti-v0"), tiny_tok)
    import asyncio

    trajs, _ = asyncio.run(trainer.collect(trainer.sampler.sample(2)))
    assert all(t.num_turns == 3 for t in trajs)
    for t in trajs:
        sampled = sum(end - start for start, end in (u.token_span for u in t.turns))
        assert sum(t.loss_mask) == sampled < len(t.token_ids)
    out = trainer.train()
    assert out["history"][0]["rollout/turns_mean"] == 3


def test_lora_trains_adapters_and_exports_a_plain_model(tmp_path, tiny_tok):
    pytest.importorskip("peft")
    from palaestra.agents.models import load_model

    cfg = _config(tmp_path, ["run.steps=2", "model.lora={r: 4, alpha: 8}", "algorithm.kl_coef=0.01"])
    trainer = _trainer(cfg, tiny_tok)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    out = trainer.train()
    assert "loss/kl" in out["history"][-1]
    exported = load_model(str(cfg.run.run_dir / "final"))
    assert not any("lora" in n for n, _ in exported.named_parameters())


def test_run_directory_contents(tmp_path, tiny_tok):
    cfg = _config(tmp_path, ["run.steps=2", "eval.every=1", "logging.tensorboard=true"])
    out = _trainer(cfg, tiny_tok).train()
    run = cfg.run.run_dir
    assert (run / "config.yaml").exists() and (run / "final" / "config.json").exists()
    assert list((run / "checkpoints").glob("step-000002"))
    assert list((run / "tensorboard").iterdir())
    records = read_metrics(run)
    assert "eval/Vowel-v0/success" in records[0] and out["after"] is not None
    assert load_config(run / "config.yaml") == cfg, "the saved config reproduces the run"


@pytest.mark.parametrize(
    "passes", [["algorithm.epochs=1"], ["algorithm.epochs=2", "algorithm.mini_batches=2"]]
)
def test_trainer_logprobs_match_the_sampler(tmp_path, tiny_tok, passes):
    """The trainer's logprobs (windowed logits; taken from the training pass when the update is
    a single pass, from a separate pass otherwise) agree with the fp32 sampler's, token by token."""
    cfg = _config(
        tmp_path, ["run.steps=1", "optimizer.micro_batch_tokens=256", *passes], env="test/VowelMulti-v0"
    )
    metrics = _trainer(cfg, tiny_tok).train()["history"][0]
    assert metrics["update/micro_batches"] > 1
    assert metrics["rollout/logprob_mismatch"] < 1e-4


def test_self_play_trains_on_both_seats_grouped_per_seat(tmp_path, tiny_tok):
    import asyncio

    from palaestra.agents.scripted import OraclePolicy

    cfg = _config(
        tmp_path,
        ["run.steps=1", "rollout.self_play=true", "rollout.tasks_per_step=2", "rollout.group_size=3"],
    )
    cfg.envs.train[0].id = "palaestra/Game-TicTacToe-v0"
    cfg.envs.eval = []
    trainer = _trainer(cfg, tiny_tok)
    model_policy, trainer.policy = trainer.policy, OraclePolicy(tokenizer=tiny_tok)  # legal moves: full games
    trajs, _ = asyncio.run(trainer.collect(trainer.sampler.sample(2)))
    assert len(trajs) == 2 * 3 * 2  # tasks x group x seats
    groups: dict[int, set[str]] = {}
    for t in trajs:
        groups.setdefault(t.group_index, set()).add(t.env_kwargs["seat"])
    assert len(groups) == 4 and all(len(seats) == 1 for seats in groups.values())
    assert all(sum(t.loss_mask) > 0 and t.reward == 0.5 for t in trajs)  # optimal self-play draws
    trainer.policy = model_policy
    out = trainer.train()  # the tiny model forfeits with unreadable moves; seats that never moved drop out
    assert 1 <= out["history"][0]["rollout/episodes"] <= 12
    assert 0.0 <= out["history"][0]["self_play/draw_rate"] <= 1.0


def test_self_play_on_a_single_agent_env_is_a_clear_error(tmp_path, tiny_tok):
    import asyncio

    trainer = _trainer(_config(tmp_path, ["run.steps=1", "rollout.self_play=true"]), tiny_tok)
    with pytest.raises(ValueError, match="not a multi-player game"):
        asyncio.run(trainer.collect(trainer.sampler.sample(1)))


def test_task_pool_trains_on_recurring_seeds_and_eval_samples_each_task(tmp_path, tiny_tok):
    cfg = _config(
        tmp_path,
        ["run.steps=1", "rollout.task_pool=3", "rollout.tasks_per_step=2", "eval.temperature=1.0"],
    )
    cfg.envs.eval[0].episodes, cfg.envs.eval[0].samples = 2, 3
    trainer = _trainer(cfg, tiny_tok)
    drawn = trainer.sampler.sample(6)
    assert sorted(t.seed for t in drawn) == [0, 0, 1, 1, 2, 2]  # two shuffled epochs of the pool
    _, results = trainer.evaluate()
    assert sorted(t.seed for t in results[0].trajectories) == [0, 0, 0, 1, 1, 1]


WEIGHT_METRICS = {
    "tis": ("offpolicy/tis_weight_mean", "offpolicy/tis_capped_frac"),
    "decoupled": ("offpolicy/behav_weight_mean", "offpolicy/behav_weight_capped_frac"),
}


@pytest.mark.parametrize(
    ("correction", "passes"),
    [("tis", ["algorithm.epochs=1"]), ("decoupled", ["algorithm.epochs=2", "algorithm.mini_batches=2"])],
)
def test_off_policy_corrections_train(tmp_path, tiny_tok, correction, passes):
    """fp32 sampler and trainer agree, so on fresh samples the correction's weight is 1 (docs §16.1)."""
    cfg = _config(tmp_path, ["run.steps=2", f"algorithm.correction={correction}", *passes])
    history = _trainer(cfg, tiny_tok).train()["history"]
    mean, capped = WEIGHT_METRICS[correction]
    for metrics in history:
        assert all(
            torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k.startswith(("loss/", "update/"))
        )
        assert metrics[mean] == pytest.approx(1.0, abs=1e-3) and metrics[capped] == 0.0


@pytest.mark.parametrize(
    ("correction", "weight", "capped_frac"),
    [("tis", 2.0, 1.0), ("decoupled", 3.0, 0.0), ("none", None, None)],
)
def test_stale_sampling_logprobs_are_weighted(tmp_path, tiny_tok, correction, weight, capped_frac):
    """Sampling logprobs log 3 below the trainer's: decoupled weighs each token 3 (cap 5), TIS min(3, 2)."""
    trainer = _trainer(_config(tmp_path, ["run.steps=1", f"algorithm.correction={correction}"]), tiny_tok)
    collect = trainer.collect

    async def stale(tasks):
        trajectories, metrics = await collect(tasks)
        for t in trajectories:
            t.logprobs = [
                lp - math.log(3.0) if m else lp for lp, m in zip(t.logprobs, t.loss_mask, strict=True)
            ]
        return trajectories, metrics

    trainer.collect = stale  # type: ignore[method-assign]
    metrics = trainer.train()["history"][0]
    assert metrics["rollout/logprob_mismatch"] == pytest.approx(math.log(3.0), abs=1e-4)
    if correction == "none":
        assert not any(k.startswith("offpolicy/") for k in metrics)
        return
    mean, capped = WEIGHT_METRICS[correction]
    assert metrics[mean] == pytest.approx(weight, abs=1e-3) and metrics[capped] == capped_frac
