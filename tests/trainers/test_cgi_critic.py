"""CGI Stage 1: critique SFT data from teacher critiques, critic SFT, and Stage 2 with the trained critic."""

from __future__ import annotations

import asyncio
import math

import pytest
import torch

import palaestra
from palaestra.config import load_config
from palaestra.rollout.critique import CRITIQUE_SYSTEM, CritiqueRequest, PolicyCritic, RuleCritic
from palaestra.trainers.critic import CriticTrainer, CriticTrainingConfig, critique_rows, critique_verdict
from tests.vowel_env import VowelEnv


class ExpertVowelEnv(VowelEnv):
    """VowelEnv with an expert action, so rule critics can judge candidates."""

    def _reset(self, options):
        obs, info = super()._reset(options)
        return obs, {**info, "expert_action": "aaaa"}

    def _step(self, action):
        out = super()._step(action)
        out.info["expert_action"] = "aaaa"
        return out


@pytest.fixture(scope="module", autouse=True)
def _env():
    palaestra.register_env(
        "test/ExpertVowel-v0", ExpertVowelEnv, kwargs={"turns": 2}, max_turns=2, override=True
    )


@pytest.fixture(scope="module")
def tok():
    from palaestra.agents.models import build_tiny_tokenizer

    return build_tiny_tokenizer()


def _config(tmp_path, algorithm, steps=1):
    return load_config(
        None,
        [],
        run={"name": "cgi", "output_dir": str(tmp_path), "steps": steps, "seed": 0},
        envs={"train": [{"id": "test/ExpertVowel-v0"}]},
        rollout={"tasks_per_step": 2, "group_size": 2, "max_new_tokens": 6},
        algorithm=algorithm,
        optimizer={"lr": 1e-2},
        logging={"tensorboard": False, "progress": False, "report": False},
        checkpoint={"every": 1},
    )


def _requests():
    return [
        CritiqueRequest("Task 1: write.", "xyz", False, "", "aaaa"),
        CritiqueRequest("Task 2: write.", "aaaa", True, "", "aaaa"),
        CritiqueRequest("Task 3: write.", "bcd", False, "", "aaaa"),
    ]


def test_critique_rows_pair_the_critic_prompt_with_the_teacher_critique(tok):
    requests = _requests()
    critiques = asyncio.run(RuleCritic("ground_truth").critique(requests))
    critiques[2] = "Looks fine to me. Conclusion: right"  # the teacher is wrong here: filtered out
    rows = critique_rows(requests, critiques, tok)
    assert len(rows) == 2 and critique_verdict(critiques[2]) is True
    for row, request, critique in zip(rows, requests, critiques, strict=False):
        system, user, reply = row.messages
        assert system == {"role": "system", "content": CRITIQUE_SYSTEM}
        assert request.question in user["content"] and request.response in user["content"]
        assert "Reference" not in user["content"]  # the critic must judge without the expert's answer
        assert reply == {"role": "assistant", "content": critique}
        target = [i for i, m in zip(row.token_ids, row.loss_mask, strict=True) if m]
        assert tok.decode(target) == critique + "<|im_end|>"  # exactly the critique and the end of turn
        assert row.loss_mask == [0] * row.prompt_length + [1] * len(target)
    assert "incorrect" in rows[0].messages[-1]["content"] and "aaaa" in rows[0].messages[-1]["content"]
    assert len(critique_rows(requests, critiques, tok, filter=False)) == 3
    assert critique_verdict("no verdict") is None
    with pytest.raises(ValueError, match="teacher"):
        CriticTrainingConfig(teacher="gpt4")


def test_critic_sft_lowers_its_nll_on_the_critiques(tmp_path, tok):
    from palaestra.agents.models import build_tiny_model

    requests = _requests()
    rows = critique_rows(requests, asyncio.run(RuleCritic("ground_truth").critique(requests)), tok)
    spec = CriticTrainingConfig(epochs=4, lr=3e-3)
    cfg = _config(tmp_path, {"name": "cgi", "critic": "trained"})
    critic = CriticTrainer(cfg, spec, model=build_tiny_model(tok, seed=3), tokenizer=tok)
    before = critic.nll(rows)
    metrics = critic.fit(rows)
    after = critic.nll(rows)
    assert metrics["critic/rows"] == 3 and math.isfinite(metrics["critic/loss/nll"])
    assert after < before - 0.5, (before, after)


@pytest.mark.slow
def test_cgi_runs_a_step_with_the_trained_critic_and_resumes_it(tmp_path, tok):
    from palaestra.agents.models import build_tiny_model
    from palaestra.rollout.storage import load_trajectories
    from palaestra.trainers import make_trainer

    algo = {
        "name": "cgi",
        "critic": "trained",
        "keep": "all",
        "critic_training": {"rounds": 1, "epochs": 2, "lr": 3e-3, "max_new_tokens": 8},
    }
    cfg = _config(tmp_path, algo)
    trainer = make_trainer(cfg, model=build_tiny_model(tok, seed=0), tokenizer=tok)
    assert isinstance(trainer.critic, PolicyCritic) and trainer.critic.policy is trainer.critic_trainer.policy
    (metrics,) = trainer.train()["history"]
    assert metrics["critic/rows"] > 0 and metrics["critic/nll_after"] < metrics["critic/nll_before"]
    assert metrics["critic/kept_fraction"] == 1.0  # rule teachers always agree with the env
    assert metrics["cgi/sft_rows"] > 0 and math.isfinite(metrics["loss/nll"])
    assert (tmp_path / "cgi" / "critic" / "final" / "config.json").exists()
    data = load_trajectories(tmp_path / "cgi" / "critic" / "critiques.parquet")
    assert len(data) == metrics["critic/rows"] and data[0].messages[0]["content"] == CRITIQUE_SYSTEM
    critic_weights = {k: v.clone() for k, v in trainer.critic_trainer.module.state_dict().items()}
    actor_weights = trainer.module.state_dict()
    assert any(not torch.equal(v, actor_weights[k]) for k, v in critic_weights.items())

    again = make_trainer(cfg, model=build_tiny_model(tok, seed=0), tokenizer=tok)
    assert not again.critic_ready and again.resume()
    assert again.critic_ready and again.step == 1
    for k, v in again.critic_trainer.module.state_dict().items():
        assert torch.equal(v, critic_weights[k]), k
