"""Rollouts on a local Ray cluster: same trajectories as the local runner, env workers, and worker
failures (the actor restarts and its in-flight episodes re-run, or they are recorded failed)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

from palaestra.agents import SamplingParams
from palaestra.agents.hf import HFPolicy
from palaestra.agents.spec import make_policy
from palaestra.rollout import RolloutConfig, Task, rollout

ray = pytest.importorskip("ray", reason="the Ray rollout needs ray: pip install 'palaestra[ray]'")

from palaestra.rollout.ray_workers import RayRollout  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SETUP = "tests.rollout.ray_envs:register"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}},
    )
    yield
    ray.shutdown()


CONFIG = RolloutConfig(
    group_size=2, max_turns=2, sampling=SamplingParams(max_new_tokens=6, temperature=0, seed=3)
)
TASKS = [Task("palaestra/Math-ArithRetry-v0", seed=s) for s in (1, 2, 3)]


def _key(t):
    actions = [turn.action for turn in t.turns]
    return (t.env_id, t.seed, t.group_index, t.sample_index, t.token_ids, t.loss_mask, actions, t.reward)


def test_same_trajectories_as_the_local_runner(cluster, tiny_model_dir, tiny_model, smollm2_tokenizer):
    spec = f"hf:{tiny_model_dir}"  # a saved folder: fast to load in each worker
    local = rollout(make_policy(spec), TASKS, CONFIG)
    remote = RayRollout(spec, config=CONFIG, num_workers=2, num_env_workers=1)
    try:
        distributed = remote.run(TASKS)
        assert all(t.error is None for t in distributed)
        assert [_key(t) for t in distributed] == [_key(t) for t in local]
        # new weights reach every worker
        updated = copy.deepcopy(tiny_model)
        with torch.no_grad():
            for p in updated.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
        remote.sync_weights(updated.state_dict())
        after = remote.run(TASKS[:1])
        expected = rollout(HFPolicy(updated, smollm2_tokenizer), TASKS[:1], CONFIG)
        assert [_key(t) for t in after] == [_key(t) for t in expected]
        assert [_key(t) for t in after] != [_key(t) for t in distributed[:2]]
    finally:
        remote.close()


def test_dead_worker_restarts_and_reruns_its_episodes(cluster, tmp_path):
    marker = tmp_path / "crashed-once"
    tasks = [Task("test/Crash-v0", seed=s, env_kwargs={"marker": str(marker)}) for s in range(3)]
    config = RolloutConfig(sampling=SamplingParams(max_new_tokens=4))
    remote = RayRollout("scripted:random", config=config, worker_setup=SETUP, max_task_retries=2)
    try:
        before = ray.get(remote.workers[0].pid.remote())
        out = remote.run(tasks)
        assert marker.exists(), "an episode killed its worker"
        assert ray.get(remote.workers[0].pid.remote()) != before, "the actor was restarted"
        assert len(out) == 3 and all(t.error is None and t.success for t in out), [t.error for t in out]
    finally:
        remote.close()


def test_episode_that_always_kills_its_worker_is_recorded_failed(cluster):
    config = RolloutConfig(sampling=SamplingParams(max_new_tokens=4))
    remote = RayRollout(
        "scripted:random", config=config, worker_setup=SETUP, max_restarts=3, max_task_retries=1
    )
    try:
        (bad,) = remote.run([Task("test/Crash-v0", seed=0, env_kwargs={"always": True})])
        assert bad.error is not None and not bad.success and bad.seed == 0
        (good,) = remote.run([Task("test/Crash-v0", seed=1)])
        assert good.error is None and good.success, "the run goes on on the restarted worker"
    finally:
        remote.close()


def test_dead_env_worker_reruns_the_episode(cluster, tmp_path):
    marker = tmp_path / "env-crashed-once"
    task = Task("test/Crash-v0", seed=0, env_kwargs={"marker": str(marker)})
    config = RolloutConfig(sampling=SamplingParams(max_new_tokens=4))
    remote = RayRollout("scripted:random", config=config, num_env_workers=1, worker_setup=SETUP)
    try:
        (traj,) = remote.run([task])
        assert marker.exists() and traj.error is None and traj.success
    finally:
        remote.close()


def _semi_key(r):
    return (r.error, r.patched, r.matches, r.rewards, r.success, [_key(t) for t in r.rows], r.history)


def _guided_key(e):
    rows = [_key(t) for t in e.refined_rows + e.direct_rows]
    return (e.error, e.candidates, e.critiques, e.success, e.reward, rows)


def test_semi_online_and_critique_guided_jobs_match_the_local_runners(cluster, tiny_model_dir, tmp_path):
    import asyncio

    from palaestra.rollout.critique import CritiqueGuidedRunner, PolicyCritic, RuleCritic
    from palaestra.rollout.demos import collect_demos, write_demos
    from palaestra.rollout.patches import ModelThought
    from palaestra.rollout.remote_jobs import (
        CriticSpec,
        CritiqueGuidedJob,
        ModelSpec,
        SemiOnlineJob,
        ThoughtSpec,
    )
    from palaestra.rollout.semi_online import DemoReplayEnv, SemiOnlineRunner, match_exact
    from palaestra.rollout.storage import load_trajectories

    demos = str(write_demos(collect_demos(TASKS[0].env_id, episodes=2, seed=5), tmp_path))
    replayed = [d for d in load_trajectories(demos) if d.turns]
    demo_tasks = [Task("offline-demo", seed=i) for i in range(len(replayed))]

    spec = f"hf:{tiny_model_dir}"
    policy, aux = make_policy(spec), make_policy(spec)
    thought = SamplingParams(max_new_tokens=4, temperature=0)
    semi = SemiOnlineRunner(
        policy,
        sampling=CONFIG.sampling,
        patch_threshold=None,
        matcher=match_exact,
        max_turns=2,
        thought_writer=ModelThought(aux, sampling=thought, with_history=False),
        config=CONFIG,
    )
    guided = CritiqueGuidedRunner(
        policy,
        PolicyCritic(policy, SamplingParams(max_new_tokens=4, temperature=0)),
        sampling=CONFIG.sampling,
        max_turns=2,
        config=CONFIG,
    )
    ruled = CritiqueGuidedRunner(
        policy,
        RuleCritic("ground_truth"),
        sampling=CONFIG.sampling,
        matcher=match_exact,
        max_turns=2,
        config=CONFIG,
    )

    offline = SemiOnlineRunner(
        policy,
        sampling=CONFIG.sampling,
        matcher=match_exact,
        env_factory=lambda task: DemoReplayEnv(replayed[task.seed]),
        config=CONFIG,
    )

    async def local():
        return (
            await semi.run(TASKS[:2], 2) + await offline.run(demo_tasks, 1),
            await guided.run(TASKS[:1], 2),
            await ruled.run(TASKS[:1], 2),
        )

    semi_local, guided_local, ruled_local = asyncio.run(local())
    off_policy = ThoughtSpec(thought, with_history=False, model=ModelSpec(spec))
    jobs = [
        *(
            SemiOnlineJob(t, g, s, CONFIG, match_exact, None, max_turns=2, thought=off_policy)
            for g, t in enumerate(TASKS[:2])
            for s in range(2)
        ),
        *(SemiOnlineJob(t, g, 0, CONFIG, match_exact, demos=demos) for g, t in enumerate(demo_tasks)),
        *(
            CritiqueGuidedJob(
                TASKS[0],
                0,
                s,
                CONFIG,
                CriticSpec(SamplingParams(max_new_tokens=4, temperature=0)),
                max_turns=2,
            )
            for s in range(2)
        ),
        *(
            CritiqueGuidedJob(TASKS[0], 0, s, CONFIG, RuleCritic("ground_truth"), match_exact, 2)
            for s in range(2)
        ),
    ]
    remote = RayRollout(spec, config=CONFIG, num_workers=2, num_env_workers=1)
    try:
        out = remote.run_jobs(jobs)
    finally:
        remote.close()
    n = 4 + len(demo_tasks)
    assert [_semi_key(r) for r in out[:n]] == [_semi_key(r) for r in semi_local]
    assert any(any(r.patched) for r in semi_local) and all(r.error is None and r.rows for r in out[:n])
    assert [_guided_key(e) for e in out[n : n + 2]] == [_guided_key(e) for e in guided_local]
    assert [_guided_key(e) for e in out[n + 2 :]] == [_guided_key(e) for e in ruled_local]


def test_a_job_that_always_kills_its_worker_is_a_failed_result(cluster):
    from palaestra.rollout.critique import RuleCritic
    from palaestra.rollout.remote_jobs import CritiqueGuidedJob

    config = RolloutConfig(sampling=SamplingParams(max_new_tokens=4))
    remote = RayRollout(
        "scripted:random", config=config, worker_setup=SETUP, max_restarts=3, max_task_retries=1
    )
    crash = Task("test/Crash-v0", seed=0, env_kwargs={"always": True})
    try:
        (bad,) = remote.run_jobs([CritiqueGuidedJob(crash, 0, 0, config, RuleCritic("indicative"))])
        assert bad.error is not None and not bad.success and bad.refined_rows == []
        (good,) = remote.run_jobs(
            [CritiqueGuidedJob(Task("test/Crash-v0", seed=1), 0, 0, config, RuleCritic())]
        )
        assert good.error is None and good.success and len(good.refined_rows) == 1
    finally:
        remote.close()


def test_a_worker_killed_under_the_async_producer_loses_no_group(cluster):
    """Groups in flight on a worker that is killed are re-run on the restarted worker or come back
    with their episodes recorded failed: every planned group reaches the learner, in its step."""
    import time

    from palaestra.rollout.producer import GroupProducer, PlannedStep

    config = RolloutConfig(group_size=2, sampling=SamplingParams(max_new_tokens=4))
    remote = RayRollout(
        "scripted:random", config=config, num_workers=2, worker_setup=SETUP, max_task_retries=2
    )
    version = {"v": 0}

    def plan(step):
        tasks = [Task("test/Slow-v0", seed=10 * step + i, env_kwargs={"delay": 0.3}) for i in range(4)]
        return PlannedStep(tasks, config)

    async def run(task, c):
        return await remote.run_async([task], c)

    producer = GroupProducer(
        run,
        plan,
        version=lambda: version["v"],
        groups_per_step=4,
        max_staleness=0,
        wait_for_learner=True,
        queue_groups=4,
    )
    before = ray.get(remote.workers[0].pid.remote())
    producer.start()
    try:
        for step in range(3):
            if step == 1:
                time.sleep(0.2)  # the step's groups are in flight
                ray.kill(remote.workers[0], no_restart=False)
            groups = [producer.take(timeout=120) for _ in range(4)]
            assert sorted((g.step, g.index) for g in groups) == [(step, i) for i in range(4)]
            for g in groups:
                assert [t.sample_index for t in g.trajectories] == [0, 1]
                assert all(t.seed == 10 * step + g.index for t in g.trajectories)
                assert all(
                    t.error is None or t.error.startswith(("RayActorError", "ActorDied"))
                    for t in g.trajectories
                )
            version["v"] += 1
            producer.wake()
        assert ray.get(remote.workers[0].pid.remote()) != before, "the killed worker was restarted"
    finally:
        producer.close()
        remote.close()
