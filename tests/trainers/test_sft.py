"""SFT on expert demonstrations: token-exact demo rows and behaviour cloning on the trainer core."""

from __future__ import annotations

import pytest

from palaestra.agents.scripted import OraclePolicy
from palaestra.config import load_config
from palaestra.rollout.demos import collect_demos
from palaestra.rollout.runner import RolloutConfig, Task, rollout
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.sft import SFTTrainer, demo_rows

_ENV = "palaestra/Game-FrozenLake-v0"
_KWARGS = {"difficulty": "easy"}


@pytest.fixture(scope="module")
def tok():
    from palaestra.agents.models import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def demos():
    return collect_demos(_ENV, episodes=3, env_kwargs=_KWARGS).trajectories


def test_demo_rows_are_the_tokens_a_rollout_of_the_expert_holds(tok, demos):
    assert max(d.num_turns for d in demos) > 1  # multi-turn: env deltas between replies
    played = rollout(
        OraclePolicy(tokenizer=tok),
        [Task(_ENV, seed=d.seed, env_kwargs=_KWARGS) for d in demos],
        RolloutConfig(),
    )
    rows = demo_rows(demos, tok)
    for row, ref in zip(rows, played, strict=True):
        assert row.token_ids == ref.token_ids
        assert row.loss_mask == ref.loss_mask
        assert row.prompt_length == ref.prompt_length
        replies = [t for t, m in zip(row.token_ids, row.loss_mask, strict=True) if m]
        expected = "".join(f"{a}<|im_end|>" for a in (t.action for t in ref.turns))
        assert tok.decode(replies) == expected


def test_demo_rows_reject_a_chat_without_the_env_observation(tok):
    bad = Trajectory(env_id="x", seed=0, messages=[{"role": "assistant", "content": "[up]"}])
    with pytest.raises(ValueError, match="starts with an assistant reply"):
        demo_rows([bad], tok)


def test_sft_lowers_the_nll_of_the_expert_replies_and_exports(tok, demos, tmp_path):
    from palaestra.agents.models import build_tiny_model

    config = load_config(
        None,
        [],
        run={"name": "base", "output_dir": str(tmp_path), "steps": 1, "seed": 0},
        envs={"train": [{"id": _ENV, "kwargs": _KWARGS}]},
        rollout={"max_new_tokens": 8},
        logging={"tensorboard": False, "progress": False, "report": False},
    )
    trainer = SFTTrainer(config, steps=6, lr=3e-3, batch_size=3, model=build_tiny_model(tok), tokenizer=tok)
    history = trainer.fit(demo_rows(demos, tok))
    assert len(history) == 6 and trainer.step == 6
    assert history[-1]["loss/nll"] < 0.8 * history[0]["loss/nll"]
    path = trainer.export(tmp_path / "sft" / "final")
    assert (path / "config.json").exists()
    assert trainer.run_dir == tmp_path / "base" / "sft"
    with pytest.raises(ValueError, match="no demo row"):
        trainer.fit([Trajectory(env_id="x", seed=0)])
