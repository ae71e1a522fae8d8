"""`palaestra export`: a checkpoint becomes a plain HF model folder, in one process."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from palaestra.cli import app

runner = CliRunner()


def _weights(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_export_a_checkpoint_as_an_hf_folder(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"""
run: {{name: run, output_dir: {tmp_path}, steps: 2}}
model: {{name: tiny-random}}
envs:
  train: [{{id: palaestra/Math-ArithEasy-v0}}]
rollout: {{tasks_per_step: 2, group_size: 2, max_new_tokens: 8}}
optimizer: {{lr: 1.0e-2}}
algorithm: {{entropy_coef: 0.1}}  # a gradient even when every reward is 0
logging: {{tensorboard: false, progress: false}}
checkpoint: {{every: 1, keep: 2}}
"""
    )
    assert runner.invoke(app, ["train", str(config)]).exit_code == 0
    run = tmp_path / "run"
    result = runner.invoke(app, ["export", str(run), str(tmp_path / "newest")])
    assert result.exit_code == 0, result.output
    assert "step 2" in result.output
    final, newest = _weights(run / "final"), _weights(tmp_path / "newest")
    assert all(torch.equal(final[k], newest[k]) for k in final)
    first = run / "checkpoints" / "step-000001"
    result = runner.invoke(app, ["export", str(run), str(tmp_path / "first"), "--checkpoint", str(first)])
    assert result.exit_code == 0, result.output
    older = _weights(tmp_path / "first")
    assert not all(torch.equal(final[k], older[k]) for k in final), "step 1 and step 2 weights must differ"
    result = runner.invoke(app, ["export", str(tmp_path), str(tmp_path / "x")])
    assert result.exit_code == 2 and "config" in result.output
