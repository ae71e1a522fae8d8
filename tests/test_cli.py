"""The command line: envs list/show, eval, train."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from palaestra.cli import app
from palaestra.rollout import load_trajectories

runner = CliRunner()


def test_envs_list_and_show():
    result = runner.invoke(app, ["envs", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "palaestra/Math-Arith-v0" in result.output and "Math" in result.output
    result = runner.invoke(app, ["envs", "show", "Math-ArithRetry-v0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "palaestra/Math-ArithRetry-v0" in result.output and "first observation" in result.output


def test_unknown_env_is_a_clear_error():
    result = runner.invoke(app, ["envs", "show", "Math-Arithmetic-v0"])
    assert result.exit_code == 2
    assert "Did you mean" in result.output and "palaestra/Math-Arith-v0" in result.output


def test_eval_oracle_writes_results_and_trajectories(tmp_path):
    out = tmp_path / "oracle"
    result = runner.invoke(
        app,
        [
            "eval",
            "--env",
            "palaestra/Math-Fractions-v0",
            "--agent",
            "scripted:oracle",
            "--episodes",
            "12",
            "--seed",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["schema_version"] == 1 and data["seeds"] == list(range(5, 17))
    assert data["summary"]["success_rate"] == 1.0 and data["summary"]["episodes"] == 12
    trajs = load_trajectories(out / "trajectories.parquet")
    assert len(trajs) == 12 and all(t.success for t in trajs)


def test_eval_bad_agent_and_env_kwargs():
    result = runner.invoke(app, ["eval", "--env", "Math-Arith-v0", "--agent", "gpt:five", "--episodes", "1"])
    assert result.exit_code == 2 and "unknown agent backend" in result.output
    result = runner.invoke(
        app, ["eval", "--env", "Math-Arith-v0", "--agent", "scripted:oracle", "--env-kwarg", "colour=blue"]
    )
    assert result.exit_code == 2 and "colour" in result.output


def test_train_from_config_with_overrides(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"""
run: {{name: cli, output_dir: {tmp_path}, steps: 1}}
model: {{name: tiny-random}}
envs:
  train: [{{id: palaestra/Math-ArithEasy-v0}}]
  eval: [{{id: palaestra/Math-ArithEasy-v0, kwargs: {{split: test}}, episodes: 4}}]
rollout: {{tasks_per_step: 2, group_size: 2, max_new_tokens: 8}}
logging: {{tensorboard: false, progress: false}}
"""
    )
    result = runner.invoke(app, ["train", str(config), "optimizer.lr=1e-4"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "held-out evaluation" in result.output and "eval/Math-ArithEasy-v0/success" in result.output
    assert (tmp_path / "cli" / "final" / "config.json").exists()
    result = runner.invoke(app, ["train", str(config), "optimizer.lr=-1"])
    assert result.exit_code == 2 and "optimizer.lr" in result.output


def _tiny_train_config(tmp_path, *, train="{id: palaestra/Math-ArithEasy-v0}", output_dir=None):
    """A one-step run of the tiny random model without evaluation or report: the cheapest real run."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"""
run: {{name: k1, output_dir: {output_dir or tmp_path / "runs"}, steps: 1}}
model: {{name: tiny-random}}
envs:
  train: [{train}]
rollout: {{tasks_per_step: 1, group_size: 2, max_new_tokens: 4}}
eval: {{before_training: false}}
logging: {{tensorboard: false, progress: false, report: false}}
"""
    )
    return config


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail loudly if a command loads a model: the checks under test must come first."""
    import palaestra.agents.models

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(palaestra.agents.models, "load_model_and_tokenizer", refuse)


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output, result.output
    text = " ".join(result.output.split())  # rich wraps long lines at the terminal width
    for fragment in fragments:
        assert fragment in text, text


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        (
            "envs.train=[{id: palaestra/Math-ArithEasyy-v0}]",
            [
                "envs.train[0]: unknown env id 'palaestra/Math-ArithEasyy-v0'",
                "Did you mean: palaestra/Math-ArithEasy-v0",
            ],
        ),
        (
            "envs.train=[{id: palaestra/Math-ArithEasy-v0, kwargs: {splitt: train}}]",
            ["envs.train[0]: palaestra/Math-ArithEasy-v0 takes no kwarg 'splitt'; did you mean 'split'?"],
        ),
        (
            "envs.eval=[{id: palaestra/Nope-v0}]",
            ["envs.eval[0]: unknown env id 'palaestra/Nope-v0'"],
        ),
    ],
)
def test_train_checks_its_envs_before_loading_the_model(tmp_path, no_model_load, override, fragments):
    result = runner.invoke(app, ["train", str(_tiny_train_config(tmp_path)), override])
    _one_line_error(result, *fragments)
    assert not (tmp_path / "runs").exists()


def test_train_config_and_output_paths_are_one_line_errors(tmp_path, no_model_load):
    _one_line_error(runner.invoke(app, ["train", str(tmp_path / "nope.yaml")]), "nope.yaml does not exist")
    _one_line_error(runner.invoke(app, ["train", str(tmp_path)]), "is a folder, not a YAML file")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("run: {}\n")
    _one_line_error(
        runner.invoke(app, ["train", str(tmp_path / "run")]),
        f"pass {tmp_path / 'run' / 'config.yaml'} with --resume",
    )
    (tmp_path / "a-file").write_text("")
    config = _tiny_train_config(tmp_path, output_dir=tmp_path / "a-file")
    _one_line_error(
        runner.invoke(app, ["train", str(config)]), "a-file is a file, not a folder; set run.output_dir"
    )


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into read-only folders: run the tests as a non-root user"
)
def test_train_in_a_read_only_folder_is_a_one_line_error(tmp_path, no_model_load):
    (tmp_path / "ro").mkdir(mode=0o555)
    config = _tiny_train_config(tmp_path, output_dir=tmp_path / "ro")
    _one_line_error(
        runner.invoke(app, ["train", str(config)]), "cannot write the run folder", "run.output_dir"
    )


def test_train_never_mixes_runs_in_one_folder(tmp_path, no_model_load):
    run = tmp_path / "runs" / "k1"
    (run / "checkpoints" / "step-000006").mkdir(parents=True)
    (run / "checkpoints" / "step-000006" / "state.json").write_text('{"step": 6}')
    (run / "metrics.jsonl").write_text('{"step": 6}\n')
    config = str(_tiny_train_config(tmp_path))
    _one_line_error(
        runner.invoke(app, ["train", config, "optimizer.lr=1e-3"]),
        f"run folder {run} already holds a run (metrics.jsonl, checkpoints/step-000006)",
        "--resume",
        "--overwrite",
        "run.name",
    )
    _one_line_error(runner.invoke(app, ["train", config, "--resume", "--overwrite"]), "not both")
    assert (run / "metrics.jsonl").read_text() == '{"step": 6}\n'
    (run / "checkpoints" / "step-000006" / "state.json").unlink()  # killed before any complete checkpoint
    _one_line_error(runner.invoke(app, ["train", config, "--resume"]), "nothing to resume", "--overwrite")


@pytest.mark.slow
def test_train_resume_and_overwrite(tmp_path):
    """The flags end to end (three runs of the tiny model); tests/trainers/test_run_safety.py has the details."""
    config = str(_tiny_train_config(tmp_path))
    run = tmp_path / "runs" / "k1"
    assert runner.invoke(app, ["train", config]).exit_code == 0
    resumed = runner.invoke(app, ["train", config, "--resume", "run.steps=2"], env={"COLUMNS": "300"})
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming {run} from step-000001 (step 1)" in resumed.output
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    fresh = runner.invoke(app, ["train", config, "--overwrite"], env={"COLUMNS": "300"})
    assert fresh.exit_code == 0, fresh.output
    (old,) = (tmp_path / "runs").glob("k1.old-*")
    assert f"moved the previous run in {run} to {old}" in fresh.output
    assert sorted(p.name for p in (old / "checkpoints").iterdir()) == ["step-000001", "step-000002"]
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]


@pytest.mark.slow
def test_quickstart_config_trains_the_embedded_model(quickstart_run):
    """The README's main job, shortened: the shipped config loads, trains SmolLM2, evaluates, exports, reports,
    and prints nothing but palaestra's own output: no third-party warning on stderr."""
    run, output, stderr, checkpoints = quickstart_run
    assert "eval/Math-ArithEasy-v0/success" in output and "report.html" in output
    assert "Warning" not in stderr and "deprecated" not in stderr, stderr
    # stderr holds at most the embedded model's one-time conversion (its line and progress bar)
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith("converting ") or "de-quantizing GGUF" in line for line in lines), stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "reward/mean" in r] == [1, 2]
    assert (run / "final" / "model.safetensors").exists() and checkpoints == ["step-000002"]
    assert (run / "report.html").exists() and (run / "viewer" / "index.html").exists()
    assert (run / "eval" / "after" / "Math-ArithRetry-v0" / "trajectories.parquet").exists()


@pytest.mark.slow
def test_code_repair_config_trains_with_the_sandbox(tmp_path):
    """configs/code-repair.yaml, shortened: multi-turn code episodes judged in the sandbox feed one GRPO step.

    The tiny random model stands in for SmolLM2 (whose training the quickstart run covers): what this
    checks is the config, the sandboxed multi-turn episodes and their way into an update.
    """
    if shutil.which("bwrap") is None:
        pytest.skip("needs bubblewrap: apt-get install bubblewrap (make sysdeps)")
    overrides = [
        f"run.output_dir={tmp_path}",
        "model.name=tiny-random",
        "run.steps=1",
        "rollout.tasks_per_step=2",
        "rollout.group_size=2",
        "rollout.max_new_tokens=48",
        "eval.max_new_tokens=48",
        "envs.eval=[{id: palaestra/Code-Bundled-v0-easy, kwargs: {split: null}, episodes: 2}]",
        "logging.progress=false",
    ]
    result = runner.invoke(app, ["train", "configs/code-repair.yaml", *overrides], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    run = tmp_path / "code-repair"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "reward/mean" in r] == [1]
    assert "eval/Code-Bundled-v0-easy/success" in result.output


def test_eval_suite_runs_agents_resumes_and_compares(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        "name: tiny\nenvs:\n  - {id: palaestra/Math-ArithEasy-v0, split: test, episodes: 6}\n"
        "  - {id: palaestra/Math-ArithRetry-v0, split: test, episodes: 4}\n"
    )
    args = ["eval", "--suite", str(suite), "--agent", "scripted:oracle", "--agent", "scripted:random"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "leaderboard" in result.output and "success by env" in result.output
    assert "scripted:oracle on Math-ArithRetry-v0: success 100.0% [100.0%, 100.0%]" in result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["agents"]) == {"scripted:oracle", "scripted:random"}
    again = runner.invoke(app, [*args, "--out", str(tmp_path / "out")], env={"COLUMNS": "200"})
    assert (
        again.exit_code == 0
        and json.loads((tmp_path / "out" / "results.json").read_text())["agents"] == (results["agents"])
    )
    compared = runner.invoke(app, ["compare", str(tmp_path / "out")], env={"COLUMNS": "200"})
    assert compared.exit_code == 0 and "1 │ scripted:oracle" in compared.output
    report = runner.invoke(app, ["report", str(tmp_path / "out")], env={"COLUMNS": "200"})
    assert report.exit_code == 0 and (tmp_path / "out" / "report.html").exists()


def test_eval_suite_argument_errors(tmp_path):
    both = runner.invoke(
        app, ["eval", "--suite", "math-core", "--env", "Math-Arith-v0", "--agent", "scripted:oracle"]
    )
    assert both.exit_code == 2 and "exactly one of --env ID or --suite NAME" in both.output
    two = runner.invoke(
        app, ["eval", "--env", "Math-Arith-v0", "--agent", "scripted:oracle", "--agent", "scripted:random"]
    )
    assert two.exit_code == 2 and "use --suite" in two.output
    unknown = runner.invoke(app, ["eval", "--suite", "nope", "--agent", "scripted:oracle"])
    assert unknown.exit_code == 2 and "unknown suite 'nope'" in unknown.output
    missing = runner.invoke(app, ["compare", str(tmp_path)])
    assert missing.exit_code == 2 and "no results at" in missing.output
    empty = runner.invoke(app, ["report", str(tmp_path)], env={"COLUMNS": "400"})
    assert empty.exit_code == 2 and "holds no metrics.jsonl" in empty.output
