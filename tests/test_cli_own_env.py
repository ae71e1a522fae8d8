"""Your own env from the command line: a plain gymnasium env, registered with gymnasium only, named as
`module:id` or imported through a config's `imports:`, evaluates and trains with no palaestra code."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from palaestra.cli import app

runner = CliRunner()
MODULE = "tests.gym_reverse_env"
REVERSE = f"{MODULE}:mine/Reverse-v0"
COLUMNS = {"COLUMNS": "200"}


def _config(tmp_path, *, head: str = "", train: str = f"{{id: {REVERSE}}}", steps: int = 2):
    """A run of the tiny random model on the reverse env, held-out evaluation on it too."""
    config = tmp_path / "mine.yaml"
    config.write_text(
        f"""{head}
run: {{name: mine, output_dir: {tmp_path / "runs"}, steps: {steps}}}
model: {{name: tiny-random}}
envs:
  train: [{train}]
  eval: [{{id: "{REVERSE}", episodes: 2}}]
rollout: {{tasks_per_step: 1, group_size: 2, max_new_tokens: 4}}
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
    assert len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_eval_and_demos_on_a_module_id(tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(
        app,
        ["eval", "--env", REVERSE, "--agent", "scripted:oracle", "--episodes", "4", "--out", str(out)],
        env=COLUMNS,
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["env_id"] == "mine/Reverse-v0" and saved["summary"]["success_rate"] == 1.0
    demos = runner.invoke(
        app, ["demos", "--env", REVERSE, "--episodes", "2", "--out", str(tmp_path / "demos")]
    )
    assert demos.exit_code == 0 and "expert solved 2/2" in demos.output, demos.output
    shown = runner.invoke(app, ["envs", "show", REVERSE], env=COLUMNS)
    assert shown.exit_code == 0 and "reverse: " in shown.output and "max turns: 1" in shown.output


def test_suite_envs_take_module_ids(tmp_path):
    suite = tmp_path / "mine.yaml"
    suite.write_text(f"name: mine\nenvs:\n  - {{id: '{REVERSE}', episodes: 3}}\n")
    result = runner.invoke(
        app, ["eval", "--suite", str(suite), "--agent", "scripted:oracle", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "scripted:oracle on Reverse-v0: success 100.0%" in result.output


@pytest.mark.parametrize(
    "head, train",
    [("", f"{{id: {REVERSE}}}"), (f"imports: [{MODULE}]", "{id: mine/Reverse-v0}")],
    ids=["module-id", "imports"],
)
def test_train_two_steps_on_a_plain_gymnasium_env(tmp_path, head, train):
    result = runner.invoke(app, ["train", str(_config(tmp_path, head=head, train=train))], env=COLUMNS)
    assert result.exit_code == 0, result.output
    assert "eval/Reverse-v0/success" in result.output
    records = [
        json.loads(line) for line in (tmp_path / "runs" / "mine" / "metrics.jsonl").read_text().splitlines()
    ]
    trained = [r for r in records if "loss/pg" in r]
    assert [r["step"] for r in trained] == [1, 2] and all(r["rollout/episodes"] == 2 for r in trained)
    assert (tmp_path / "runs" / "mine" / "final" / "config.json").exists()


@pytest.mark.parametrize(
    ("head", "train", "fragments"),
    [
        (
            "",
            f"{{id: {MODULE}:mine/Revrse-v0}}",
            ["envs.train[0]: unknown env id 'mine/Revrse-v0'", "Did you mean: mine/Reverse-v0"],
        ),
        ("", "{id: no_such_module:mine/Reverse-v0}", ["no module named 'no_such_module'", "PYTHONPATH"]),
        (f"imports: [{MODULE}]", "{id: mine/Reverse-v0, kwargs: {lenght: 3}}", ["did you mean 'length'?"]),
        ("imports: [no_such_module]", "{id: mine/Reverse-v0}", ["imports: cannot import 'no_such_module'"]),
    ],
    ids=["typo", "no-module", "kwarg", "imports"],
)
def test_bad_env_in_a_config_fails_before_the_model_loads(tmp_path, no_model_load, head, train, fragments):
    result = runner.invoke(
        app, ["train", str(_config(tmp_path, head=head, train=train))], env={"COLUMNS": "400"}
    )
    _one_line_error(result, *fragments)
    assert not (tmp_path / "runs").exists()


def test_eval_on_a_bad_module_id_is_one_line(no_model_load):
    result = runner.invoke(
        app,
        ["eval", "--env", f"{MODULE}:mine/Revrse-v0", "--agent", "hf:tiny-random"],
        env={"COLUMNS": "400"},
    )
    _one_line_error(result, "unknown env id 'mine/Revrse-v0'", "Did you mean: mine/Reverse-v0")


def test_serve_and_eval_a_module_id_env(tmp_path):
    pytest.importorskip("openenv.core", reason="the serve extra (openenv-core) is not installed")
    from palaestra.serving import EnvServer, create_app

    with EnvServer(create_app([REVERSE], max_sessions=4, idle_timeout_s=60)) as server:
        args = ["eval", "--env", REVERSE, "--env-server", server.url, "--agent", "scripted:oracle"]
        result = runner.invoke(app, [*args, "--episodes", "2", "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["server"] == server.url and saved["summary"]["success_rate"] == 1.0
