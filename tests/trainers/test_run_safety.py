"""A run never loses work: it keeps out of other runs' folders, stops instead of training on nothing
(saving a checkpoint first), saves before its final evaluation, and resumes past a metrics line cut short."""

from __future__ import annotations

import json

import pytest

import palaestra
from palaestra.config import load_config
from palaestra.trainers.core.checkpoint import latest_checkpoint
from palaestra.trainers.core.preflight import RunSetupError, prepare_run_dir
from palaestra.trainers.core.tracking import read_metrics
from palaestra.trainers.core.trainer import RunStopped
from palaestra.trainers.grpo import GRPOTrainer
from tests.vowel_env import VowelEnv


class FlakyVowelEnv(VowelEnv):
    """VowelEnv whose resets fail once the class-wide budget `resets_left` is spent (an env service going down)."""

    resets_left = 0

    def _reset(self, options):
        type(self).resets_left -= 1
        if type(self).resets_left < 0:
            raise ConnectionError("env service down")
        return super()._reset(options)


@pytest.fixture(scope="module", autouse=True)
def _envs():
    palaestra.register_env("test/SafeVowel-v0", VowelEnv, override=True)
    palaestra.register_env("test/FlakyVowel-v0", FlakyVowelEnv, override=True)


@pytest.fixture(scope="module")
def tiny_tok():
    from palaestra.agents.models import build_tiny_tokenizer

    return build_tiny_tokenizer()


def _config(tmp_path, overrides=(), env="test/SafeVowel-v0", eval_envs=()):
    """One task of two samples per step, four new tokens: the cheapest real run."""
    return load_config(
        None,
        list(overrides),
        run={"name": "t", "output_dir": str(tmp_path), "steps": 1, "seed": 0},
        envs={"train": [{"id": env}], "eval": [{"id": e, "episodes": 1} for e in eval_envs]},
        rollout={"tasks_per_step": 1, "group_size": 2, "max_new_tokens": 4},
        optimizer={"lr": 1e-2},
        eval={"before_training": False},
        logging={"tensorboard": False, "progress": False, "report": False},
    )


def _trainer(cfg, tok, cls=GRPOTrainer):
    from palaestra.agents.models import build_tiny_model

    return cls(cfg, model=build_tiny_model(tok, seed=0), tokenizer=tok)


def _old_run(run_dir, last_step=6):
    """What a finished run leaves: metrics, a checkpoint, a final model."""
    (run_dir / "checkpoints" / f"step-{last_step:06d}").mkdir(parents=True)
    (run_dir / "checkpoints" / f"step-{last_step:06d}" / "state.json").write_text(
        json.dumps({"step": last_step})
    )
    (run_dir / "final").mkdir()
    lines = [json.dumps({"step": s, "reward/mean": s / 10}) for s in range(1, last_step + 1)]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")


# -- the run folder -------------------------------------------------------------------------------
def test_a_folder_holding_a_run_is_refused_unless_resumed_or_moved_aside(tmp_path):
    run = tmp_path / "k1"
    _old_run(run)
    before = (run / "metrics.jsonl").read_text()
    with pytest.raises(RunSetupError, match=r"already holds a run .*--resume.*--overwrite.*run\.name"):
        prepare_run_dir(run, resume=False, overwrite=False)
    with pytest.raises(RunSetupError, match="not both"):
        prepare_run_dir(run, resume=True, overwrite=True)

    resumed = prepare_run_dir(run, resume=True, overwrite=False)
    assert resumed.resume_from == run / "checkpoints" / "step-000006"
    assert "step-000006 (step 6)" in resumed.message

    moved = prepare_run_dir(run, resume=False, overwrite=True)
    assert moved.resume_from is None and moved.moved_to is not None
    assert moved.moved_to.parent == tmp_path and moved.moved_to.name.startswith("k1.old-")
    assert (moved.moved_to / "metrics.jsonl").read_text() == before, "the old run is kept whole"
    assert (moved.moved_to / "checkpoints" / "step-000006" / "state.json").exists()
    assert run.is_dir() and not any(run.iterdir())
    again = prepare_run_dir(run, resume=False, overwrite=True)  # nothing to move now
    assert again.moved_to is None and sorted(p.name for p in tmp_path.iterdir())[0] == "k1"


def test_resume_with_nothing_to_resume(tmp_path):
    fresh = prepare_run_dir(tmp_path / "new", resume=True, overwrite=False)
    assert (
        fresh.resume_from is None
        and fresh.message == f"no checkpoint in {tmp_path / 'new'}: starting from step 0"
    )
    killed = tmp_path / "killed"  # checkpoint.every=0 and killed before the end: metrics, no checkpoint
    killed.mkdir()
    (killed / "metrics.jsonl").write_text('{"step": 1}\n')
    (killed / "checkpoints" / ".tmp-step-000002").mkdir(parents=True)
    with pytest.raises(RunSetupError, match=r"nothing to resume: .* no complete checkpoint.*--overwrite"):
        prepare_run_dir(killed, resume=True, overwrite=False)


def test_an_unwritable_run_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RunSetupError, match=r"file is a file, not a folder; set run\.output_dir"):
        prepare_run_dir(tmp_path / "file" / "k1", resume=False, overwrite=False)


def test_train_refuses_another_runs_folder_before_touching_it(tmp_path, tiny_tok):
    cfg = _config(tmp_path)
    _old_run(cfg.run.run_dir)
    before = (cfg.run.run_dir / "metrics.jsonl").read_text()
    with pytest.raises(RunSetupError, match="--resume"):
        _trainer(cfg, tiny_tok).train()
    assert (cfg.run.run_dir / "metrics.jsonl").read_text() == before
    assert not (cfg.run.run_dir / "config.yaml").exists()


# -- stopping instead of training on nothing -----------------------------------------------------
def test_a_step_whose_episodes_all_fail_stops_the_run_after_a_checkpoint(tmp_path, tiny_tok, monkeypatch):
    monkeypatch.setattr(FlakyVowelEnv, "resets_left", 4)  # two steps of two episodes, then the env is down
    cfg = _config(tmp_path, ["run.steps=4"], env="test/FlakyVowel-v0")
    with pytest.raises(RunStopped) as stopped:
        _trainer(cfg, tiny_tok).train()
    message = str(stopped.value)
    assert "step 3: 2 of 2 episodes failed with an env error" in message
    assert "ConnectionError: env service down" in message and "--resume" in message
    assert latest_checkpoint(cfg.run.run_dir / "checkpoints").name == "step-000002"
    assert str(cfg.run.run_dir / "checkpoints" / "step-000002") in message
    assert [r["step"] for r in read_metrics(cfg.run.run_dir)] == [1, 2]
    assert not (cfg.run.run_dir / "final").exists()


def test_max_env_error_fraction_stops_a_run_at_a_partial_failure(tmp_path, tiny_tok, monkeypatch):
    monkeypatch.setattr(FlakyVowelEnv, "resets_left", 1)  # the first step's second episode fails
    cfg = _config(tmp_path, ["run.steps=3", "rollout.max_env_error_fraction=0.5"], env="test/FlakyVowel-v0")
    with pytest.raises(RunStopped, match=r"step 1: 1 of 2 episodes failed .*max_env_error_fraction=0\.5\)"):
        _trainer(cfg, tiny_tok).train()
    assert latest_checkpoint(cfg.run.run_dir / "checkpoints").name == "step-000000", "resumable even so"


def test_steps_without_an_update_stop_the_run_after_a_checkpoint(tmp_path, tiny_tok):
    class NothingTrainable(GRPOTrainer):
        def trainable(self, trajectories):
            return [False] * len(trajectories)

    cfg = _config(tmp_path, ["run.steps=5", "run.max_skipped_steps=2"])
    with pytest.raises(RunStopped, match=r"2 steps in a row \(up to step 2\) had no trainable trajectory"):
        _trainer(cfg, tiny_tok, NothingTrainable).train()
    assert latest_checkpoint(cfg.run.run_dir / "checkpoints").name == "step-000002"
    assert [r.get("update/skipped") for r in read_metrics(cfg.run.run_dir)] == [1.0, 1.0]


def test_a_failing_final_evaluation_leaves_the_trained_model(tmp_path, tiny_tok):
    class BrokenEval(GRPOTrainer):
        def evaluate(self):
            raise RuntimeError("judge unreachable")

    cfg = _config(tmp_path, eval_envs=["test/SafeVowel-v0"])
    with pytest.raises(
        RunStopped, match="final evaluation failed: RuntimeError: judge unreachable"
    ) as stopped:
        _trainer(cfg, tiny_tok, BrokenEval).train()
    assert (cfg.run.run_dir / "final" / "config.json").exists()
    assert latest_checkpoint(cfg.run.run_dir / "checkpoints").name == "step-000001"
    assert f"hf:{cfg.run.run_dir / 'final'}" in str(stopped.value)


# -- metrics survive a cut ------------------------------------------------------------------------
def test_resume_after_a_metrics_line_cut_short(tmp_path, tiny_tok):
    cfg = _config(tmp_path)
    _trainer(cfg, tiny_tok).train()
    metrics = cfg.run.run_dir / "metrics.jsonl"
    with metrics.open("a") as f:
        f.write('{"step": 2, "reward/mean": 0.2')  # killed mid-write: no closing brace, no newline
    with pytest.warns(UserWarning, match="line 2 is not complete JSON"):
        assert [r["step"] for r in read_metrics(cfg.run.run_dir)] == [1]

    longer = _config(tmp_path, ["run.steps=2"])
    with pytest.warns(UserWarning, match="line 2 is not complete JSON"):
        _trainer(longer, tiny_tok).train(resume=True)
    assert [r["step"] for r in read_metrics(cfg.run.run_dir)] == [1, 2]
    assert metrics.read_text().endswith("}\n")
