"""An algorithm from outside palaestra trains through `palaestra train`, found through the YAML alone.

The toy algorithm (tests/trainers/toy_algorithm.py, RLOO) is never imported here: the training config's
`imports` (or `algorithm.name: module:name`) is what makes palaestra find it.
"""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

import palaestra
from palaestra.cli import app
from palaestra.config import ConfigError, load_config
from palaestra.trainers.core.tracking import read_metrics
from tests.vowel_env import VowelEnv

runner = CliRunner()

TOY = "tests.trainers.toy_algorithm"


@pytest.fixture(scope="module", autouse=True)
def _env():
    palaestra.register_env("test/Vowel-v0", VowelEnv, override=True)


def _config(tmp_path, head: str) -> str:
    path = tmp_path / "toy.yaml"
    path.write_text(
        f"""{head}
run: {{name: toy, output_dir: {tmp_path / "runs"}, steps: 2}}
model: {{name: tiny-random}}
envs:
  train: [{{id: test/Vowel-v0}}]
rollout: {{tasks_per_step: 2, group_size: 3, max_new_tokens: 6}}
optimizer: {{lr: 1.0e-3}}
eval: {{before_training: false}}
logging: {{tensorboard: false, progress: false, report: false}}
"""
    )
    return str(path)


def test_a_toy_algorithm_named_in_the_yaml_trains_two_steps(tmp_path):
    config = _config(tmp_path, f"imports: [{TOY}]\nalgorithm: {{name: toy, clip: 0.1}}")
    result = runner.invoke(app, ["train", config], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "toy"
    records = [r for r in read_metrics(run) if "toy/baseline_mean" in r]
    assert [r["step"] for r in records] == [1, 2]  # its advantages' metrics reach the log
    assert all(r["update/micro_batches"] >= 1 for r in records)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["imports"] == [TOY] and saved["algorithm"] == {
        "name": "toy",
        "epochs": 1,
        "mini_batches": 1,
        "clip": 0.1,
    }
    resumed = runner.invoke(app, ["train", str(run / "config.yaml"), "--resume", "run.steps=3"])
    assert resumed.exit_code == 0, resumed.output  # the saved config finds the algorithm again


def test_module_colon_name_is_shorthand_for_imports(tmp_path):
    cfg = load_config(_config(tmp_path, f"algorithm: {{name: '{TOY}:toy'}}"))
    assert cfg.algorithm.name == "toy" and cfg.imports == [TOY]
    assert type(cfg.algorithm).__name__ == "ToyConfig"
    with pytest.raises(ConfigError, match=r"algorithm.clip: .*less than 1"):
        load_config(_config(tmp_path, f"imports: [{TOY}]\nalgorithm: {{name: toy, clip: 2}}"))
    with pytest.raises(ConfigError, match=r"algorithm.gamma: unknown key; allowed for toy: name, epochs, "):
        load_config(_config(tmp_path, f"imports: [{TOY}]\nalgorithm: {{name: toy, gamma: 0.9}}"))


def test_an_unknown_algorithm_is_one_line_before_the_model_loads(tmp_path, monkeypatch):
    import palaestra.agents.models

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(palaestra.agents.models, "load_model_and_tokenizer", refuse)
    cases = {
        "algorithm: {name: gpro}": "algorithm.name: unknown algorithm 'gpro'. Did you mean: grpo",
        f"algorithm: {{name: '{TOY}:tyo'}}": f"unknown algorithm 'tyo' (module {TOY} registers none",
        "imports: [no_such_module_xyz]": "imports: cannot import 'no_such_module_xyz'",
    }
    for head, fragment in cases.items():
        result = runner.invoke(app, ["train", _config(tmp_path, head)], env={"COLUMNS": "1000"})
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()
