"""Semi-online and critique-guided episodes as jobs for Ray rollout workers (`RayRollout.run_jobs_async`).

A job is a picklable description of one episode. The worker builds what the episode's strategy needs
from it: the runner over the worker's own policy (the trained one, synced after every update), a thought
writer or model critic over that policy or over an auxiliary model built on the worker from its agent
spec (`ModelSpec`, once per worker), and the offline demos read on the worker from their parquet path
(a filesystem every node sees). Rule critics and matchers travel as they are.

    jobs = [SemiOnlineJob(task, 0, s, config, matcher=match_bracketed) for s in range(4)]
    rollouts = await ray_rollout.run_jobs_async(jobs)       # SemiOnlineRollout, in the order of jobs

The episode itself is the runner's (`SemiOnlineRunner.rollout`, `CritiqueGuidedRunner.episode`): the
same seeds give the same episode as in the trainer's process; a failure is a result with `error` set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from palaestra.agents.base import Policy, SamplingParams
from palaestra.rollout.critique import Critic, CritiqueGuidedRunner, GuidedEpisode, PolicyCritic
from palaestra.rollout.patches import THOUGHT_TEMPLATE, ModelThought
from palaestra.rollout.runner import RolloutConfig, Task, task_env
from palaestra.rollout.semi_online import (
    DemoReplayEnv,
    Matcher,
    SemiOnlineRollout,
    SemiOnlineRunner,
    match_bracketed,
)

if TYPE_CHECKING:
    from palaestra.rollout.ray_workers import _RolloutWorker

__all__ = ["CriticSpec", "CritiqueGuidedJob", "ModelSpec", "SemiOnlineJob", "ThoughtSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """An auxiliary model the worker builds once with `make_policy(spec, **options)`.

    Attributes:
        spec: agent spec (`hf:PATH`, `openai:MODEL`, ...).
        options: backend options.
    """

    spec: str
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, worker: _RolloutWorker) -> Policy:
        """The worker's copy of the model (built on first use)."""
        from palaestra.agents.spec import make_policy

        key = ("model", self.spec, repr(sorted(self.options.items())))
        policy: Policy = worker.cached(key, lambda: make_policy(self.spec, **self.options))
        return policy


@dataclass(frozen=True)
class ThoughtSpec:
    """A `ModelThought` writer: the worker's policy (on-policy thought) or `model` (off-policy).

    Attributes:
        sampling: its sampling parameters.
        with_history: show the history (on-policy) or only the current state (off-policy).
        model: the auxiliary model M0; None: the worker's policy.
    """

    sampling: SamplingParams
    with_history: bool
    model: ModelSpec | None = None

    def build(self, worker: _RolloutWorker) -> ModelThought:
        policy = worker.policy if self.model is None else self.model.build(worker)
        return ModelThought(policy, sampling=self.sampling, with_history=self.with_history)


@dataclass(frozen=True)
class CriticSpec:
    """A `PolicyCritic` on the worker: of the worker's policy (self-critique) or of `model`.

    Attributes:
        sampling: the critic's sampling parameters (None: `PolicyCritic`'s default).
        show_reference: also show the expert's answer.
        model: the critic model; None: the worker's policy.
    """

    sampling: SamplingParams | None = None
    show_reference: bool = False
    model: ModelSpec | None = None

    def build(self, worker: _RolloutWorker) -> PolicyCritic:
        policy = worker.policy if self.model is None else self.model.build(worker)
        return PolicyCritic(policy, sampling=self.sampling, show_reference=self.show_reference)


def _demo_env(worker: _RolloutWorker, path: str) -> Any:
    """A task -> `DemoReplayEnv` factory over the demos at `path` (read once per worker; seed = index)."""
    from palaestra.rollout.storage import load_trajectories

    demos = worker.cached(("demos", path), lambda: [d for d in load_trajectories(path) if d.turns])
    return lambda task: DemoReplayEnv(demos[task.seed])


def _env_factory(worker: _RolloutWorker) -> Any:
    return lambda task: task_env(task, worker.make_env)


@dataclass(frozen=True)
class SemiOnlineJob:
    """One semi-online rollout (`SemiOnlineRunner.rollout`); the fields are the runner's arguments.

    Attributes:
        task: the task (with `demos`: its seed is the index of the demo to replay).
        group: the rollout's group index.
        sample: its sample index.
        config: env calls and the sampling (`config.sampling`, seeded per rollout and step).
        matcher: compares an action with the expert's.
        patch_threshold: patches per rollout.
        reward_scheme: step rewards.
        max_turns: cap on steps.
        thought: the patch's thought writer (None: thought-free).
        thought_template: the patched history entry.
        demos: parquet of offline demos to replay (None: the live env).
    """

    task: Task
    group: int
    sample: int
    config: RolloutConfig
    matcher: Matcher = match_bracketed
    patch_threshold: int | None = 1
    reward_scheme: Literal["paper", "code"] = "paper"
    max_turns: int | None = None
    thought: ThoughtSpec | None = None
    thought_template: str = THOUGHT_TEMPLATE
    demos: str | None = None

    @property
    def label(self) -> str:
        return f"{self.task.env_id} seed={self.task.seed} (semi-online)"

    async def run(self, worker: _RolloutWorker) -> SemiOnlineRollout:
        factory = _env_factory(worker) if self.demos is None else _demo_env(worker, self.demos)
        runner = SemiOnlineRunner(
            worker.policy,
            sampling=self.config.sampling,
            patch_threshold=self.patch_threshold,
            matcher=self.matcher,
            reward_scheme=self.reward_scheme,
            max_turns=self.max_turns,
            env_factory=factory,
            thought_writer=None if self.thought is None else self.thought.build(worker),
            thought_template=self.thought_template,
            config=self.config,
        )
        return await runner.rollout(self.task, self.group, self.sample)

    def failed(self, error: str) -> SemiOnlineRollout:
        return SemiOnlineRollout(error=error)


@dataclass(frozen=True)
class CritiqueGuidedJob:
    """One critique-guided episode (`CritiqueGuidedRunner.episode`); the fields are the runner's arguments.

    Attributes:
        task: the task.
        group: the episode's group index.
        sample: its sample index.
        config: env calls and the actor's sampling (`config.sampling`).
        critic: a rule critic (sent as it is) or a `CriticSpec` built on the worker.
        matcher: action comparison for rule critics' verdicts.
        max_turns: cap on steps.
    """

    task: Task
    group: int
    sample: int
    config: RolloutConfig
    critic: Critic | CriticSpec
    matcher: Matcher | None = None
    max_turns: int | None = None

    @property
    def label(self) -> str:
        return f"{self.task.env_id} seed={self.task.seed} (critique-guided)"

    async def run(self, worker: _RolloutWorker) -> GuidedEpisode:
        critic = self.critic.build(worker) if isinstance(self.critic, CriticSpec) else self.critic
        runner = CritiqueGuidedRunner(
            worker.policy,
            critic,
            sampling=self.config.sampling,
            matcher=self.matcher,
            max_turns=self.max_turns,
            config=self.config,
            env_factory=_env_factory(worker),
        )
        return await runner.episode(self.task, self.group, self.sample)

    def failed(self, error: str) -> GuidedEpisode:
        return GuidedEpisode([], [], [], [], error=error)
