"""SPA-RL with a separate progress-estimator LM: it learns, its step rewards feed GiGPO, it resumes."""

from __future__ import annotations

import pytest
import torch

from palaestra.config import load_config
from palaestra.rollout.trajectory import Trajectory, Turn
from palaestra.trainers.core.advantages import turn_token_advantages
from palaestra.trainers.gigpo import gigpo_advantages, turn_anchors
from palaestra.trainers.spa import ProgressModel, progress_step_rewards

GOOD, BAD = 7, 9  # the token that ends a rewarded reply, and one that does not


def _episode(last_tokens: list[int], group: int = 0) -> Trajectory:
    """Prompt [1, 2] then one reply per entry, each [5, last]; return 1 if some reply ends in GOOD."""
    ids, spans = [1, 2], []
    for last in last_tokens:
        spans.append((len(ids), len(ids) + 2))
        ids += [5, last, 3]  # reply, then an env token
    t = Trajectory(
        env_id="hand", seed=0, group_index=group, token_ids=ids, messages=[{"role": "user", "content": "s0"}]
    )
    t.loss_mask = [0] * len(ids)
    t.logprobs = [0.0] * len(ids)
    won = GOOD in last_tokens
    t.turns = [
        Turn(
            f"a{k}",
            f"s{k + 1}",
            float(won and k == len(last_tokens) - 1),
            k == len(spans) - 1,
            False,
            {},
            "stop",
            s,
        )
        for k, s in enumerate(spans)
    ]
    return t


def _episodes() -> list[Trajectory]:
    return [_episode([BAD, GOOD]), _episode([BAD, BAD]), _episode([GOOD]), _episode([BAD])]


@pytest.fixture(scope="module")
def tok():
    from palaestra.agents.models import build_tiny_tokenizer

    return build_tiny_tokenizer()


def test_estimator_lm_loss_drops_on_hand_made_episodes(tok):
    from palaestra.agents.models import build_tiny_model

    torch.manual_seed(0)
    episodes = _episodes()
    returns = [t.reward for t in episodes]
    est = ProgressModel(build_tiny_model(tok, seed=1), lr=3e-3, fit_iters=12)
    assert est.predict(episodes[:1]) == [[0.0, 0.0]]  # zero-initialised head
    before = est.mse(episodes, returns)
    assert before == pytest.approx(0.5)
    est.fit(episodes, returns)
    after = est.mse(episodes, returns)
    assert after < 0.1, after
    c = est.predict([_episode([BAD, GOOD])])[0]
    assert c[1] > c[0]  # the GOOD step carries the credit


def _config(tmp_path, **algo):
    return load_config(
        None,
        [],
        run={"name": "spa", "output_dir": str(tmp_path), "steps": 1, "seed": 0},
        envs={"train": [{"id": "x"}]},
        rollout={"tasks_per_step": 2, "group_size": 2},
        algorithm={"name": "gigpo", "step_rewards": "progress", "progress_estimator": "model", **algo},
        logging={"tensorboard": False, "progress": False},
    )


def test_estimator_step_rewards_feed_gigpo_step_returns_and_survive_resume(tmp_path, tok):
    from palaestra.agents.models import build_tiny_model
    from palaestra.trainers import make_trainer

    cfg = _config(tmp_path, progress_model_lr=3e-3, progress_model_iters=10, gamma=0.9, progress_beta=0.5)
    trainer = make_trainer(cfg, model=build_tiny_model(tok, seed=0), tokenizer=tok)
    assert isinstance(trainer.progress, ProgressModel)
    assert trainer.progress.lm is not trainer.module  # a separate LM, not the policy
    episodes = _episodes()
    trainer.progress.fit(episodes, [t.reward for t in episodes])  # so its contributions are not all 0
    contributions = trainer.progress.predict(episodes)
    rewards = [progress_step_rewards(c, [True] * len(c), beta=0.5) for c in contributions]
    expected = gigpo_advantages(
        rewards,
        [turn_anchors(t) for t in episodes],
        [0] * 4,
        gamma=0.9,
        episode_returns=[t.reward for t in episodes],
    )
    got = trainer.advantages(episodes).values  # predicts with the estimator as it was, then fits once more
    assert got == [
        pytest.approx(turn_token_advantages(t, a)) for t, a in zip(episodes, expected, strict=True)
    ]
    env_only = gigpo_advantages(
        [t.step_rewards for t in episodes], [turn_anchors(t) for t in episodes], [0] * 4, gamma=0.9
    )
    flat = [a for adv in expected for a in adv]
    assert flat != pytest.approx([a for adv in env_only for a in adv])  # progress rewards made R_t

    trainer.step = 1
    trainer.save()
    assert (tmp_path / "spa" / "progress" / "checkpoints" / "step-000001" / "state.json").exists()
    saved = {k: v.clone() for k, v in trainer.progress.state_dict().items()}
    moments = trainer.progress.optimizer.state_dict()["state"]
    again = make_trainer(cfg, model=build_tiny_model(tok, seed=0), tokenizer=tok)
    assert not torch.equal(again.progress.head.weight, saved["head.weight"])
    assert again.resume() and again.step == 1
    for k, v in again.progress.state_dict().items():
        assert torch.equal(v, saved[k]), k
    restored = again.progress.optimizer.state_dict()["state"]
    assert torch.equal(restored[0]["exp_avg"], moments[0]["exp_avg"])
    for mine, theirs in zip(
        again.progress.predict(episodes), trainer.progress.predict(episodes), strict=True
    ):
        assert mine == pytest.approx(theirs)
