"""Trainer core parts: task sampler, length bucketing, schedules, atomic checkpoints, metrics."""

from __future__ import annotations

import pytest
import torch

from palaestra.trainers.core.batching import Row, bucket_by_length, collate
from palaestra.trainers.core.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from palaestra.trainers.core.optim import build_optimizer, build_scheduler
from palaestra.trainers.core.sampler import TaskPoolSampler, TaskSampler, WeightedEnv, make_task_sampler
from palaestra.trainers.core.tracking import MetricsWriter, read_metrics


def test_sampler_is_reproducible_and_resumable():
    envs = [WeightedEnv("a", 3.0), WeightedEnv("b", 1.0, {"k": 1})]
    one = TaskSampler(envs, seed=5)
    all_at_once = one.sample(40)
    two = TaskSampler(envs, seed=5)
    in_pieces = two.sample(15)
    resumed = TaskSampler(envs, seed=5)
    resumed.load_state_dict(two.state_dict())
    in_pieces += resumed.sample(25)
    assert all_at_once == in_pieces
    share_a = sum(t.env_id == "a" for t in all_at_once) / 40
    assert 0.5 < share_a < 0.95
    assert all(t.env_kwargs == {"k": 1} for t in all_at_once if t.env_id == "b")
    with pytest.raises(ValueError, match="seed"):
        TaskSampler(envs, seed=6).load_state_dict(two.state_dict())


def test_pool_sampler_cycles_shuffled_epochs_and_resumes():
    sampler = make_task_sampler([WeightedEnv("a"), WeightedEnv("b")], seed=0, task_pool=3)
    assert isinstance(sampler, TaskPoolSampler)
    first, second = sampler.sample(6), sampler.sample(6)
    pool = sorted((e, s) for e in "ab" for s in range(3))
    assert sorted((t.env_id, t.seed) for t in first) == pool == sorted((t.env_id, t.seed) for t in second)
    assert first != second  # each epoch is shuffled anew
    again = make_task_sampler([WeightedEnv("a"), WeightedEnv("b")], seed=0, task_pool=3)
    again.load_state_dict(sampler.state_dict())
    assert again.sample(4) == sampler.sample(4)
    with pytest.raises(ValueError, match="task_pool"):
        again.load_state_dict(TaskSampler([WeightedEnv("a")], seed=0).state_dict())
    assert isinstance(make_task_sampler([WeightedEnv("a")], seed=0), TaskSampler)


def _row(n: int, i: int) -> Row:
    return Row(list(range(1, n + 1)), [0] * (n // 2) + [1] * (n - n // 2), [-0.5] * n, float(i), i)


def test_bucketing_respects_the_token_budget_and_keeps_every_row():
    rows = [_row(n, i) for i, n in enumerate([5, 40, 7, 33, 12, 8, 39, 2])]
    groups = bucket_by_length(rows, max_tokens=64)
    assert sorted(r.index for g in groups for r in g) == list(range(8))
    assert all(len(g) * max(len(r) for r in g) <= 64 or len(g) == 1 for g in groups)
    padded = sum(len(g) * max(len(r) for r in g) for g in groups)
    assert padded < 8 * 40, "bucketing pads less than padding everything to the longest row"


def test_collate_aligns_to_target_tokens():
    mb = collate([_row(4, 0), _row(2, 1)], pad_id=0)
    assert mb.input_ids.tolist() == [[1, 2, 3, 4], [1, 2, 0, 0]]
    # row 0 mask [0,0,1,1] -> targets (tokens 1..3) [0,1,1]; row 1 mask [0,1] -> [1, 0, 0]
    assert mb.loss_mask.tolist() == [[0, 1, 1], [1, 0, 0]]
    assert mb.adv.tolist() == [[0, 0, 0], [1, 0, 0]]
    assert mb.old_logp.tolist() == [[0, -0.5, -0.5], [-0.5, 0, 0]]
    assert mb.num_tokens == 3


def test_schedules():
    p = [torch.nn.Parameter(torch.zeros(1))]
    for schedule, at_end in [("constant", 1.0), ("cosine", 0.1), ("linear", 0.1)]:
        opt = build_optimizer(p, lr=1.0, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8)
        sched = build_scheduler(opt, schedule=schedule, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
        lrs = []
        for _ in range(14):
            lrs.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
        assert sched.get_last_lr()[0] == pytest.approx(at_end)
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(
            [torch.nn.Parameter(torch.zeros(1), requires_grad=False)],
            lr=1,
            weight_decay=0,
            betas=(0.9, 0.9),
            eps=1e-8,
        )


def test_checkpoint_round_trip_and_rotation(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model.parameters(), lr=0.1, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8)
    sched = build_scheduler(opt, schedule="cosine", warmup_steps=1, total_steps=10)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched.step()
    for step in (1, 2, 3):
        save_checkpoint(
            tmp_path, step, model=model, optimizer=opt, scheduler=sched, state={"cursor": step * 8}, keep=2
        )
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["step-000002", "step-000003"]
    expected_next = torch.rand(3)  # RNG state was saved before this draw

    other = torch.nn.Linear(3, 2)
    opt2 = build_optimizer(other.parameters(), lr=0.1, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8)
    sched2 = build_scheduler(opt2, schedule="cosine", warmup_steps=1, total_steps=10)
    ckpt = load_checkpoint(latest_checkpoint(tmp_path), model=other, optimizer=opt2, scheduler=sched2)
    assert ckpt.step == 3 and ckpt.state == {"cursor": 24}
    assert torch.equal(other.weight, model.weight) and torch.equal(other.bias, model.bias)
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert opt2.state_dict()["state"][0]["exp_avg"].allclose(opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.rand(3), expected_next)
    with pytest.raises(ValueError, match="does not match the model"):
        load_checkpoint(
            latest_checkpoint(tmp_path), model=torch.nn.Linear(3, 3), optimizer=opt2, scheduler=sched2
        )


def test_incomplete_checkpoint_is_ignored(tmp_path):
    (tmp_path / ".tmp-step-000009-123").mkdir()
    (tmp_path / "step-000009").mkdir()  # no state.json: not a finished checkpoint
    assert latest_checkpoint(tmp_path) is None


def test_metrics_writer_drops_steps_after_resume_point(tmp_path):
    writer = MetricsWriter(tmp_path, tensorboard=False)
    for step in range(1, 5):
        writer.log(step, {"reward/mean": step / 10, "x": torch.tensor(1.5), "bad": float("nan")})
    writer.truncate_after(2)
    writer.log(3, {"reward/mean": 0.33})
    writer.close()
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[0]["x"] == 1.5 and records[0]["bad"] is None and records[2]["reward/mean"] == 0.33


def _tiny_optimised_model():
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model.parameters(), lr=0.1, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8)
    return model, opt, build_scheduler(opt, schedule="constant", warmup_steps=0, total_steps=10)


def test_rotation_never_deletes_the_newest_for_a_later_step_left_by_something_else(tmp_path):
    model, opt, sched = _tiny_optimised_model()
    for foreign in (5, 6):  # another run's checkpoints, with later steps than this run's
        (tmp_path / f"step-{foreign:06d}").mkdir()
        (tmp_path / f"step-{foreign:06d}" / "state.json").write_text(f'{{"step": {foreign}}}')
    for step in (1, 2, 3):
        path = save_checkpoint(tmp_path, step, model=model, optimizer=opt, scheduler=sched, state={}, keep=2)
        assert path.exists(), f"the checkpoint of step {step} was deleted right after it was written"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000002",
        "step-000003",
        "step-000005",
        "step-000006",
    ]


def test_latest_checkpoint_orders_steps_numerically(tmp_path):
    for step in (999_999, 1_000_000):
        (tmp_path / f"step-{step:06d}").mkdir()
        (tmp_path / f"step-{step:06d}" / "state.json").write_text("{}")
    assert latest_checkpoint(tmp_path).name == "step-1000000"


def test_metrics_with_a_line_cut_short_are_read_and_repaired(tmp_path):
    writer = MetricsWriter(tmp_path, tensorboard=False)
    for step in (1, 2):
        writer.log(step, {"reward/mean": step / 10})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "rew')  # a kill mid-write
    with pytest.warns(UserWarning, match=r"metrics\.jsonl: line 3 is not complete JSON"):
        assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
    with pytest.warns(UserWarning, match="line 3"):
        writer.truncate_after(2)
    writer.log(3, {"reward/mean": 0.3})
    writer.close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 3
