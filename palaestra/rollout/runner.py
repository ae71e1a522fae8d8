"""The async multi-turn rollout runner.

One coroutine per episode; all episodes run at once (up to `max_concurrency`), so at every moment the
policy backend sees every pending turn's request and can batch them into one forward pass. Env steps
run inline on the event loop (cheap envs) or in a thread pool with a per-step timeout (`env_executor`).
An env that raises or times out ends its own episode with `Trajectory.error` set; the others go on.

The episode loop is the shared `driver.EpisodeDriver`; `PolicyTurns` is its plain strategy: the env
receives the policy's reply, and every turn is recorded token-exact.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

import gymnasium as gym

from palaestra.agents.base import Generation, GenerationRequest, Message, Policy, SamplingParams
from palaestra.envs.registration import make
from palaestra.rewards import with_reward
from palaestra.rollout.chat import TokenChat, env_message, env_messages, observation_text
from palaestra.rollout.driver import (
    Episode,
    EpisodeDriver,
    EpisodeError,
    Step,
    TurnStrategy,
    episode_seed,
    jsonable,
)
from palaestra.rollout.trajectory import Trajectory, Turn
from palaestra.tools.calls import format_tool_calls

__all__ = [
    "EpisodeError",
    "PolicyTurns",
    "RolloutConfig",
    "RolloutRunner",
    "Task",
    "policy_version",
    "rollout",
    "sync_policy",
    "task_env",
]


@dataclass(frozen=True)
class Task:
    """One task to roll out: an env id, its kwargs and the reset seed (and options).

    Attributes:
        env_id: registered env id.
        seed: `reset` seed; the `group_size` samples of a task share it.
        env_kwargs: kwargs for `palaestra.make`.
        options: `reset` options (e.g. {"task_index": 3} for dataset envs).
        server: the OpenEnv server the env runs on ("ws://host:port"); None: in this process.
        reward: a reward rubric for the env (`palaestra.rewards.RewardSpec`, as a dict); None: the env's.
    """

    env_id: str
    seed: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] | None = None
    server: str | None = None
    reward: dict[str, Any] | None = None


def task_env(task: Task, env_factory: Callable[..., gym.Env] | None = None) -> gym.Env:
    """The env of `task`: made here (by `env_factory`, default `palaestra.make`), or a session on its
    server; wrapped in its reward rubric."""
    if task.server or env_factory is None:
        env = make(task.env_id, server=task.server, **task.env_kwargs)
    else:
        env = env_factory(task.env_id, **task.env_kwargs)
    return with_reward(env, task.reward)


@dataclass(frozen=True)
class RolloutConfig:
    """How episodes are run.

    Attributes:
        group_size: samples per task (same seed), for group-relative advantages.
        max_turns: cap on actions per episode on top of the env's own limit (None = env's limit).
        max_context_tokens: truncate an episode whose next prompt would exceed this (token backends).
        step_timeout_s: per-step limit for env.reset/env.step (thread executor only).
        env_executor: "inline" runs env steps on the event loop; "thread" in a pool, with timeouts;
            "auto" (default) runs them inline unless the env declares `metadata["blocking_step"]`
            (its steps wait on a subprocess or a browser: code, web envs), then in the pool.
        max_concurrency: episodes in flight at once.
        sampling: sampling parameters for every reply; the seed (if any) is varied per episode and turn.
    """

    group_size: int = 1
    max_turns: int | None = None
    max_context_tokens: int | None = None
    step_timeout_s: float | None = None
    env_executor: Literal["inline", "thread", "auto"] = "auto"
    max_concurrency: int = 64
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise ValueError(f"group_size={self.group_size}; it must be >= 1")
        if self.max_turns is not None and self.max_turns < 1:
            raise ValueError(f"max_turns={self.max_turns}; it must be >= 1 or None")
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency={self.max_concurrency}; it must be >= 1")
        if self.step_timeout_s is not None and not self.step_timeout_s > 0:
            raise ValueError(f"step_timeout_s={self.step_timeout_s}; it must be > 0 seconds, or None")
        if self.max_context_tokens is not None and self.max_context_tokens < 1:
            raise ValueError(f"max_context_tokens={self.max_context_tokens}; it must be >= 1 or None")
        if self.step_timeout_s is not None and self.env_executor != "thread":
            raise ValueError(
                "step_timeout_s needs env_executor='thread' (an inline step cannot be interrupted)"
            )


class RolloutRunner:
    """Runs episodes of one policy concurrently and records token-exact trajectories.

    Args:
        policy: any `Policy`; token-level backends (with a tokenizer) get exact prompt ids.
        config: rollout settings.
        env_factory: builds an env from (env_id, kwargs); defaults to `palaestra.make`. A task with a
            `server` always runs there.
        version: the policy version a request is sent under, recorded for its tokens when the backend
            does not record versions itself (default: the policy's `weight_version`, else 0).
    """

    def __init__(
        self,
        policy: Policy,
        config: RolloutConfig | None = None,
        env_factory: Callable[..., gym.Env] | None = None,
        *,
        version: Callable[[], int] | None = None,
    ):
        self.policy = policy
        self.version = version or (lambda: policy_version(policy))
        self.config = config or RolloutConfig()
        self.env_factory = env_factory or (lambda env_id, **kw: make(env_id, **kw))
        self.chat = policy_chat(policy)
        self.driver = EpisodeDriver(self.config)

    async def run(
        self, tasks: Sequence[Task], on_episode_end: Callable[[Trajectory], None] | None = None
    ) -> list[Trajectory]:
        """Roll out `group_size` samples of every task.

        Returns:
            Trajectories ordered by (task, sample): task i's samples at [i*G, (i+1)*G).
        """

        def job(group: int, task: Task, sample: int) -> Callable[[], Awaitable[Trajectory]]:
            async def one() -> Trajectory:
                traj = await self.run_episode(task, group_index=group, sample_index=sample)
                if on_episode_end is not None:
                    on_episode_end(traj)
                return traj

            return one

        size = self.config.group_size
        return await self.driver.run_all([job(g, t, s) for g, t in enumerate(tasks) for s in range(size)])

    def close(self) -> None:
        self.driver.close()

    async def run_episode(self, task: Task, *, group_index: int = 0, sample_index: int = 0) -> Trajectory:
        """Run one episode; never raises for env or generation failures (see `Trajectory.error`)."""
        traj = Trajectory(
            env_id=task.env_id,
            seed=task.seed,
            group_index=group_index,
            sample_index=sample_index,
            agent=self.policy.name,
            env_kwargs=dict(task.env_kwargs),
        )
        episode = Episode(
            partial(task_env, task, self.env_factory),
            task.seed,
            task.options,
            self.config.max_turns,
            f"{task.env_id} seed={task.seed}",
        )
        await self.driver.run(episode, PolicyTurns(self, task, traj))
        return traj


class PolicyTurns(TurnStrategy):
    """Plain episodes: the env receives the policy's reply; every turn is recorded token-exact.

    A tool env's declarations (`env.unwrapped.tools`) go to the chat template (or, for a template that
    ignores them, into the system message) and to text backends as `GenerationRequest.tools`; its tool
    results come back as `tool` messages, appended token-exact and never trained on. Calls a server
    returned structured are sent to the env as text in the env's own reply format.
    """

    def __init__(self, runner: RolloutRunner, task: Task, traj: Trajectory):
        self.runner, self.task, self.traj = runner, task, traj
        self.messages: list[Message] = []
        self.info: dict[str, Any] = {}
        self.tools: tuple[dict[str, Any], ...] = ()
        self.tool_format = "hermes"
        self.generation: Generation | None = None
        self.action = ""
        self.span = (0, 0)

    async def start(self, env: gym.Env, observation: Any, info: dict[str, Any]) -> None:
        traj, chat = self.traj, self.runner.chat
        traj.task_id = str(info.get("task_id", ""))
        system_prompt = getattr(env.unwrapped, "system_prompt", "")
        self.tools = tuple(getattr(env.unwrapped, "tools", None) or ())
        parser = getattr(env.unwrapped, "tool_parser", None)
        self.tool_format = str(getattr(parser, "name", "hermes"))
        self.messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self.messages.append(env_message(observation, info.get("role", "user")))
        if chat is not None:
            self.messages = chat.with_tools(self.messages, self.tools)
        traj.messages = self.messages
        self.info = info
        if chat is not None:
            append_tokens(traj, chat.prompt_ids(self.messages, self.tools), trainable=False)
            traj.prompt_length = len(traj.token_ids)

    def context_tokens(self) -> int | None:
        return len(self.traj.token_ids)

    def truncate(self) -> None:
        self.traj.truncated = True
        if self.traj.turns:
            self.traj.turns[-1].truncated = True

    async def act(self, turn: int) -> str | None:
        runner, traj, task = self.runner, self.traj, self.task
        base = runner.config.sampling
        request = GenerationRequest(
            messages=tuple(self.messages),
            sampling=replace(base, seed=episode_seed(base.seed, task.seed, traj.sample_index, turn)),
            prompt_token_ids=tuple(traj.token_ids) if runner.chat is not None else None,
            info=self.info,
            request_id=f"{task.env_id}/{task.seed}/{traj.sample_index}/{turn}",
            tools=self.tools or None,
        )
        version = runner.version()
        (generation,) = await runner.policy.generate([request])
        if generation.finish_reason == "error":
            raise EpisodeError(f"generation failed: {generation.error}")
        if generation.prompt_token_ids is not None and runner.chat is not None:
            adopt_engine_prompt(traj, generation.prompt_token_ids)
        self.span = append_reply(
            traj, generation, runner.chat is not None, runner.policy.name, version=version
        )
        self.generation = generation
        if generation.tool_calls:  # a server's structured calls: the env reads them in its own format
            self.action = format_tool_calls(generation.text, generation.tool_calls, self.tool_format)
            calls = [call.openai() for call in generation.tool_calls]
            self.messages.append({"role": "assistant", "content": generation.text, "tool_calls": calls})
        else:
            self.action = generation.text
            self.messages.append({"role": "assistant", "content": generation.text})
        return self.action

    async def record(self, turn: int, action: str, step: Step) -> bool:
        traj, generation = self.traj, self.generation
        assert generation is not None
        truncated = step.truncated or step.turn_limit
        traj.turns.append(
            Turn(
                action=self.action,
                observation=observation_text(step.observation),
                reward=step.reward,
                terminated=step.terminated,
                truncated=truncated,
                info=jsonable(step.info),
                finish_reason=generation.finish_reason,
                token_span=self.span,
            )
        )
        traj.success = bool(step.info.get("success", False))
        if step.terminated or truncated:
            traj.terminated, traj.truncated = step.terminated, truncated
            return False
        messages = env_messages(step.observation, step.info)
        self.messages.extend(messages)
        self.info = step.info
        if self.runner.chat is not None:
            ids = self.runner.chat.continuation_ids(generation.token_ids, messages)
            append_tokens(traj, ids, trainable=False)
        return True

    def fail(self, error: str) -> None:
        self.traj.error, self.traj.success = error, False


def policy_chat(policy: Policy) -> TokenChat | None:
    """The token-exact chat of a policy with a tokenizer (images for a vision model), else None."""
    if policy.tokenizer is None:
        return None
    return TokenChat(policy.tokenizer, images=bool(getattr(policy, "accepts_images", False)))


def policy_version(policy: Policy) -> int:
    """The policy version (weight updates applied) a backend reports as `weight_version`; else 0."""
    return int(getattr(policy, "weight_version", 0))


def sync_policy(policy: Policy, state_dict: Mapping[str, Any] | None, version: int | None) -> None:
    """`policy.sync_weights(state_dict)`, telling it the weights' `version` where its backend takes one.

    Raises:
        TypeError: the policy cannot take new weights.
    """
    sync = getattr(policy, "sync_weights", None)
    if sync is None:
        raise TypeError(f"policy {policy.name} cannot take new weights (it has no sync_weights)")
    if version is not None and "version" in inspect.signature(sync).parameters:
        sync(state_dict, version=version)
    else:
        sync(state_dict)


def append_tokens(
    traj: Trajectory,
    ids: Sequence[int],
    *,
    trainable: bool,
    logprobs: Sequence[float] | None = None,
    versions: Sequence[int] | None = None,
) -> None:
    """Append ids to the trajectory's token sequence (sampled ones with `trainable`, their logprobs and
    the policy versions that sampled them; -1 where not sampled or not known)."""
    traj.token_ids.extend(int(i) for i in ids)
    traj.loss_mask.extend([int(trainable)] * len(ids))
    traj.logprobs.extend([float(x) for x in logprobs] if logprobs is not None else [0.0] * len(ids))
    traj.token_versions.extend([int(v) for v in versions] if versions is not None else [-1] * len(ids))


def adopt_engine_prompt(traj: Trajectory, engine_ids: Sequence[int]) -> None:
    """Record the prompt as the engine saw it (a vision model expands each image placeholder).

    Everything up to the end of the last reply was recorded expanded already; only the ids appended
    since (the new messages, with the new image's placeholder) change, and they are not trained on.
    """
    start = traj.turns[-1].token_span[1] if traj.turns else 0
    if list(engine_ids[:start]) != traj.token_ids[:start]:
        raise EpisodeError(
            "the engine's prompt does not start with the trajectory's tokens; the backend changed "
            "tokens other than the image placeholders"
        )
    tail = [int(i) for i in engine_ids[start:]]
    del traj.token_ids[start:], traj.loss_mask[start:], traj.logprobs[start:], traj.token_versions[start:]
    append_tokens(traj, tail, trainable=False)
    if not traj.turns:
        traj.prompt_length = len(traj.token_ids)


def append_reply(
    traj: Trajectory, generation: Generation, tokens: bool, policy: str, *, version: int = -1
) -> tuple[int, int]:
    """Append a reply's sampled ids (if the policy has a tokenizer); its [start, end) span.

    Each token's version is the backend's (`Generation.token_versions`) where it records them, else
    `version`, the policy's version when the request was sent.
    """
    if not tokens:
        return (0, 0)
    if not generation.token_ids:
        raise EpisodeError(f"policy {policy} has a tokenizer but returned no token ids")
    start = len(traj.token_ids)
    versions = generation.token_versions or [version] * len(generation.token_ids)
    append_tokens(traj, generation.token_ids, trainable=True, logprobs=generation.logprobs, versions=versions)
    return (start, len(traj.token_ids))


def rollout(
    policy: Policy,
    tasks: Sequence[Task],
    config: RolloutConfig | None = None,
    on_episode_end: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory]:
    """Synchronous convenience wrapper: run `tasks` with `policy` and return the trajectories."""

    async def main() -> list[Trajectory]:
        runner = RolloutRunner(policy, config)
        try:
            return await runner.run(tasks, on_episode_end=on_episode_end)
        finally:
            runner.close()

    return asyncio.run(main())
