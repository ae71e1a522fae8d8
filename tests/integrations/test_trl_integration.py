"""TRL's GRPOTrainer on palaestra envs: the task dataset, the rollout function's outputs, one training step."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import palaestra
from palaestra import StepOutcome
from palaestra.integrations.trl import TASK_KEY, TRLRollout, env_reward, task_dataset, task_of, trl_outputs
from palaestra.rollout import Task, Trajectory, Turn
from tests.vowel_env import VowelEnv

trl = pytest.importorskip("trl")

RETRY = "palaestra/Math-ArithRetry-v0"  # "try again" feedback: up to 3 attempts


class CrashEnv(VowelEnv):
    """Fails in its first step, like an env whose browser or server went away."""

    def _step(self, action: str) -> StepOutcome:
        raise ConnectionError("env server went away")


@pytest.fixture(scope="module", autouse=True)
def _env():
    palaestra.register_env("test/Vowel2-v0", VowelEnv, kwargs={"turns": 2}, max_turns=2, override=True)
    palaestra.register_env("test/Crash-v0", CrashEnv, override=True)


def _config(tmp_path, **overrides):
    from trl import GRPOConfig

    args = {
        "output_dir": str(tmp_path / "trl"),
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "num_generations": 2,
        "max_completion_length": 6,
        "temperature": 1.0,
        "learning_rate": 1e-2,
        "beta": 0.0,
        "use_cpu": True,
        "shuffle_dataset": False,
        "max_steps": 1,
        "logging_steps": 1,
        "report_to": [],
        "save_strategy": "no",
        "disable_tqdm": True,
        "seed": 0,
    }
    return GRPOConfig(**{**args, **overrides})


def _trainer(tmp_path, model, tokenizer, tasks, rollout, **overrides):
    from trl import GRPOTrainer

    return GRPOTrainer(
        model=copy.deepcopy(
            model
        ),  # TRL changes the model it trains: the session's tiny model stays untouched
        reward_funcs=env_reward,
        args=_config(tmp_path, **overrides),
        train_dataset=task_dataset(tasks),
        processing_class=tokenizer,
        rollout_func=rollout,
    )


# -- the dataset --------------------------------------------------------------------------------------
def test_task_dataset_prompts_are_the_envs_first_chat_and_name_their_task():
    tasks = [Task(RETRY, 3), Task(RETRY, 4), Task("test/Vowel2-v0", 5, options={"x": 1})]
    rows = task_dataset(tasks)["prompt"]
    assert [task_of(prompt) for prompt in rows] == tasks
    env = palaestra.make(RETRY)
    observation, _ = env.reset(seed=3)
    system, first = rows[0]
    assert system["role"] == "system" and system["content"] == env.unwrapped.system_prompt
    assert first["role"] == "user" and first["content"] == observation
    assert first[TASK_KEY] is None, "only the first message names the task"


def test_unrendered_dataset_needs_no_env():
    made = []

    def factory(env_id, **kwargs):
        made.append(env_id)
        return palaestra.make(env_id, **kwargs)

    rows = task_dataset([Task(RETRY, 1)], env_factory=factory, render=False)["prompt"]
    assert made == [] and rows[0][0]["content"] == f"{RETRY} seed=1"
    assert task_of(rows[0]) == Task(RETRY, 1)


def test_bad_prompts_and_tasks_get_one_clear_error():
    with pytest.raises(ValueError, match="names no palaestra task; build the train dataset with"):
        task_of([{"role": "user", "content": "hello"}])
    with pytest.raises(ValueError, match="must be JSON values"):
        task_dataset([Task(RETRY, 0, env_kwargs={"bad": object()})], render=False)
    with pytest.raises(ValueError, match="no tasks"):
        task_dataset([])
    with pytest.raises(palaestra.UnknownEnvError, match="Math-ArithRetri-v0"):
        task_dataset([Task("palaestra/Math-ArithRetri-v0", 0)], render=False)
    with pytest.raises(ValueError, match="max_failed_fraction=0"):
        TRLRollout(max_failed_fraction=0)


# -- the outputs and the reward ------------------------------------------------------------------------
def _traj(tokens, mask, prompt_length, rewards, error=None):
    turns = [Turn("a", "o", r, False, False, {}) for r in rewards]
    logprobs = [-0.5 if m else 0.0 for m in mask]
    return Trajectory(
        "e", 0, token_ids=tokens, loss_mask=mask, logprobs=logprobs, prompt_length=prompt_length,
        turns=turns, error=error, success=sum(rewards) > 0.5,
    )  # fmt: skip


def test_outputs_split_prompt_and_completion_and_mask_env_tokens():
    ok = _traj([1, 2, 3, 10, 11, 20, 21, 12], [0, 0, 0, 1, 1, 0, 0, 1], 3, [0.25, 0.5])
    failed = _traj([1, 2, 10], [0, 0, 1], 2, [0.0], error="EpisodeError: boom")
    empty = _traj([], [], 0, [], error="ValueError: reset failed")
    out = trl_outputs([ok, failed, empty], pad_id=0)
    assert out["prompt_ids"] == [[1, 2, 3], [1, 2], [0]]
    assert out["completion_ids"] == [[10, 11, 20, 21, 12], [10], [0]]
    assert out["env_mask"] == [[1, 1, 0, 0, 1], [0], [0]], "a failed episode is not trained on"
    assert out["logprobs"] == [[-0.5, -0.5, 0.0, 0.0, -0.5], [-0.5], [0.0]]
    assert out["env_reward"] == [0.75, None, None], "a failed episode is unscored, not reward 0"
    assert out["env_turns"] == [2, 1, 0] and out["env_failed"] == [False, True, True]


def test_env_reward_returns_the_episode_returns_and_logs_success():
    logged = {}
    rewards = env_reward(
        env_reward=[1.0, None, 0.25],
        env_success=[True, False, False],
        env_turns=[1, 3, 2],
        env_failed=[False, True, False],
        prompts=[],
        completions=[],
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )
    assert rewards == [1.0, None, 0.25]
    assert logged == {"palaestra/success": 1 / 3, "palaestra/turns": 2.0, "palaestra/failed": 1 / 3}


def test_rollout_settings_are_checked_before_any_episode(tmp_path, tiny_model, smollm2_tokenizer):
    with pytest.raises(ValueError, match="step_timeout_s needs env_executor='thread'"):
        TRLRollout(step_timeout_s=1.0)
    trainer = _trainer(
        tmp_path, tiny_model, smollm2_tokenizer, [Task(RETRY, 0)], TRLRollout(), repetition_penalty=1.1
    )
    with pytest.raises(ValueError, match=r"repetition_penalty=1\.1"):
        trainer.rollout_func(trainer.train_dataset["prompt"], trainer)


# -- the rollout function on a trainer -------------------------------------------------------------------
def test_rollout_plays_multi_turn_episodes_token_exact(tmp_path, tiny_model, smollm2_tokenizer):
    made = []

    def factory(env_id: str, **kwargs) -> gym.Env:  # any gymnasium env factory
        made.append(env_id)
        return palaestra.make(env_id, **kwargs)

    rollout = TRLRollout(env_factory=factory, max_new_tokens=4)
    tasks = [Task(RETRY, 7), Task(RETRY, 8)]
    trainer = _trainer(tmp_path, tiny_model, smollm2_tokenizer, tasks, rollout)
    prompts = [p for p in trainer.train_dataset["prompt"] for _ in range(2)]  # as TRL repeats them
    out = rollout(prompts, trainer)

    trajs = rollout.last_trajectories
    assert [(t.seed, t.group_index, t.sample_index) for t in trajs] == [
        (7, 0, 0),
        (7, 0, 1),
        (8, 1, 0),
        (8, 1, 1),
    ]
    assert made and set(made) == {RETRY}
    for i, traj in enumerate(trajs):
        assert traj.error is None and traj.num_turns == 3, "a random model fails all 3 attempts"
        assert out["prompt_ids"][i] + out["completion_ids"][i] == traj.token_ids
        mask = out["env_mask"][i]
        assert sum(mask) == traj.num_generated_tokens and 0 in mask, "env feedback is in the completion"
        env_text = smollm2_tokenizer.decode(
            [t for t, m in zip(out["completion_ids"][i], mask, strict=True) if not m]
        )
        assert traj.turns[0].observation in env_text
        assert out["env_reward"][i] == traj.reward == sum(t.reward for t in traj.turns)
    env = palaestra.make(RETRY)
    observation, _ = env.reset(seed=7)
    assert observation in smollm2_tokenizer.decode(out["prompt_ids"][0])


def test_a_served_env_gives_the_same_episodes_as_in_process(tmp_path, tiny_model, smollm2_tokenizer):
    pytest.importorskip("openenv.core", reason="the serve extra (openenv-core) is not installed")
    from palaestra.serving import EnvServer, create_app

    rollout = TRLRollout(env_executor="thread", step_timeout_s=60, max_new_tokens=4)
    with EnvServer(create_app([RETRY], max_sessions=8, idle_timeout_s=60)) as server:
        tasks = [Task(RETRY, seed, server=server.url) for seed in (7, 8)]
        trainer = _trainer(tmp_path, tiny_model, smollm2_tokenizer, tasks, rollout)
        prompts = [p for p in trainer.train_dataset["prompt"] for _ in range(2)]
        out = rollout(prompts, trainer)
    local = task_dataset([Task(RETRY, seed) for seed in (7, 8)])["prompt"]
    strip = [[{k: v for k, v in m.items() if k != TASK_KEY} for m in prompt] for prompt in local]
    assert [[{k: v for k, v in m.items() if k != TASK_KEY} for m in p] for p in prompts[::2]] == strip
    for i, traj in enumerate(rollout.last_trajectories):
        assert traj.error is None and traj.num_turns == 3 and out["env_reward"][i] == traj.reward
        env = palaestra.make(RETRY)  # the same actions in process: the same answers
        env.reset(seed=traj.seed)
        for turn in traj.turns:
            observation, reward, *_ = env.step(turn.action)
            assert (observation, reward) == (turn.observation, turn.reward)


def test_a_batch_of_failed_episodes_stops_training_with_the_cause(tmp_path, tiny_model, smollm2_tokenizer):
    tasks = [Task("test/Crash-v0", 0)]
    trainer = _trainer(tmp_path, tiny_model, smollm2_tokenizer, tasks, TRLRollout(max_new_tokens=2))
    prompts = list(trainer.train_dataset["prompt"]) * 2
    with pytest.raises(RuntimeError, match=r"2 of 2 episodes failed .* first: ConnectionError: env server"):
        trainer.rollout_func(prompts, trainer)


# -- one TRL training step ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_one_grpo_step_trains_on_env_rewards(tmp_path, tiny_model, smollm2_tokenizer):
    before = {name: p.detach().clone() for name, p in tiny_model.named_parameters()}
    rollout = TRLRollout()
    tasks = [Task("test/Vowel2-v0", 0), Task("test/Vowel2-v0", 1), Task("test/Crash-v0", 2)]
    trainer = _trainer(tmp_path, tiny_model, smollm2_tokenizer, tasks, rollout, per_device_train_batch_size=6)
    trainer.train()

    assert trainer.state.global_step == 1
    trajs = rollout.last_trajectories
    played, crashed = trajs[:4], trajs[4:]
    assert all(t.error is None and t.num_turns == 2 for t in played)
    assert all(t.error == "ConnectionError: env server went away" for t in crashed)
    returns = [t.reward for t in played]
    assert len(set(returns)) > 1, "the vowel env's rewards vary between samples"
    logs = next(entry for entry in trainer.state.log_history if "reward" in entry)
    # the crashed episodes are unscored: the mean is over the played ones, not dragged down by zeros
    assert logs["rewards/env_reward/mean"] == pytest.approx(sum(returns) / 4, abs=1e-6)
    assert logs["palaestra/failed"] == pytest.approx(2 / 6)
    trained = trainer.accelerator.unwrap_model(trainer.model)
    changed = [name for name, p in trained.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert changed, "one GRPO step on the env's rewards changed the weights"


@pytest.mark.slow
def test_example_script_trains_one_step(tmp_path):
    script = Path(__file__).parents[2] / "examples" / "trl_grpo.py"
    args = ["--model", "tiny-random", "--steps", "1", "--tasks", "2", "--num-generations", "2"]
    args += ["--max-new-tokens", "4", "--output-dir", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(script.parents[1]), "TRL_EXPERIMENTAL_SILENCE": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "'rewards/env_reward/mean'" in proc.stdout + proc.stderr
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
