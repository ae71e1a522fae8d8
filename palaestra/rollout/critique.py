"""Critiques and critique-guided refinements (Critique-GRPO §5.1-§5.2, CGI §6 of docs/algorithms.md).

A critic reads a task, a reply and what the env said about it, and writes a natural-language
critique; the policy then re-answers given (question, previous reply, critique). Critics:

    RuleCritic("indicative")    "The generated solution is correct/incorrect."              (c_I)
    RuleCritic("ground_truth")  ... plus the expert's answer (`info["expert_action"]`)       (c_GT)
    RuleCritic("feedback")      ... plus the env's own feedback (failing tests, verifier)
    PolicyCritic(policy)        a model (any backend, or the policy itself: self-critique)   (c_CoT)

`refine` turns critiques into refinements and scores them in a fresh env with the task's seed. The
refinement is returned as a training row *for the original prompt* (§5.3): the critique and the previous
reply are not in its context, which is what makes it off-policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, Protocol

import gymnasium as gym

from palaestra.agents.base import GenerationRequest, Message, Policy, SamplingParams
from palaestra.envs.registration import make
from palaestra.rollout.chat import TokenChat, observation_text
from palaestra.rollout.driver import (
    Episode,
    EpisodeDriver,
    EpisodeError,
    Step,
    TurnStrategy,
    jsonable,
    run_one,
    run_samples,
    tagged_seed,
)
from palaestra.rollout.runner import RolloutConfig, Task, task_env
from palaestra.rollout.trajectory import GuidedStep, Refinement, Trajectory, Turn

__all__ = [
    "CRITIQUE_SYSTEM",
    "Critic",
    "CritiqueGuidedRunner",
    "CritiqueGuidedTurns",
    "CritiqueRequest",
    "GuidedEpisode",
    "PolicyCritic",
    "RuleCritic",
    "critic_messages",
    "refine",
    "refinement_messages",
]

REFINE_INSTRUCTION = (
    "Given the question, your previous answer and a critique of it, answer the question again: correct "
    "the errors the critique points out, if any, reason step by step, and give the final answer in the "
    "format the question asks for. Make sure the new answer addresses every issue the critique raises."
)
CRITIQUE_SYSTEM = (
    "You are an expert reviewer. Given a task and an attempted answer, check the attempt step by step, "
    "point out any error and how to fix it, and end with 'Conclusion: right' or 'Conclusion: wrong'."
)


@dataclass(frozen=True)
class CritiqueRequest:
    """What a critic sees about one reply.

    Attributes:
        question: the task as the policy saw it (the first observation).
        response: the reply being critiqued.
        correct: the env's verdict (`success`).
        feedback: what the env said after the reply (test results, "incorrect", ...).
        expert: a correct reply (`info["expert_action"]`), when the env has one.
    """

    question: str
    response: str
    correct: bool
    feedback: str = ""
    expert: str | None = None


class Critic(Protocol):
    """Writes one critique per request."""

    async def critique(self, requests: Sequence[CritiqueRequest]) -> list[str]: ...


@dataclass(frozen=True)
class RuleCritic:
    """Critiques built from the env's verdict and feedback, no model (see the module docstring)."""

    kind: Literal["indicative", "ground_truth", "feedback"] = "ground_truth"

    async def critique(self, requests: Sequence[CritiqueRequest]) -> list[str]:
        out = []
        for r in requests:
            text = f"The generated solution is {'correct' if r.correct else 'incorrect'}."
            if self.kind == "ground_truth" and r.expert is not None:
                text += f" The ground truth is: {r.expert}"
            elif self.kind == "feedback" and r.feedback:
                text += f" Feedback from the environment: {r.feedback}"
            out.append(text)
        return out


class PolicyCritic:
    """A model critic: any `Policy` prompted to review the reply (CoT critique; self-critique if the
    policy is the one being trained). The env's verdict is not shown, so the critique is the model's own.

    Args:
        policy: the critic model.
        sampling: its sampling parameters (paper: T = 0.7).
        show_reference: also show the expert's answer as a reference (paper's self-critique with GT).
    """

    def __init__(self, policy: Policy, sampling: SamplingParams | None = None, show_reference: bool = False):
        self.policy = policy
        self.sampling = sampling or SamplingParams(temperature=0.7, max_new_tokens=256)
        self.show_reference = show_reference

    async def critique(self, requests: Sequence[CritiqueRequest]) -> list[str]:
        prompts = [
            GenerationRequest(
                messages=tuple(critic_messages(r, show_reference=self.show_reference)), sampling=self.sampling
            )
            for r in requests
        ]
        return [g.text for g in await self.policy.generate(prompts)]


def critic_messages(request: CritiqueRequest, *, show_reference: bool = False) -> list[Message]:
    """The critic's prompt for one reply: review instructions, the task and the attempt.

    The env's verdict is never shown; the expert's answer only with `show_reference`. A trained critic
    (CGI Stage 1, `trainers/critic.py`) is fine-tuned on exactly these prompts.
    """
    user = f"Task:\n{request.question}\n\nAttempted answer:\n{request.response}"
    if show_reference and request.expert is not None:
        user += f"\n\nReference answer:\n{request.expert}"
    return [{"role": "system", "content": CRITIQUE_SYSTEM}, {"role": "user", "content": user}]


def refinement_messages(system: str, question: str, response: str, critique: str) -> list[Message]:
    """The refinement prompt (§5.2): question, previous answer, critique, instruction."""
    user = f"Question:\n{question}\n\nPrevious answer:\n{response}\n\nCritique:\n{critique}\n\n{REFINE_INSTRUCTION}"
    head: list[Message] = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": user}]


def _question(trajectory: Trajectory) -> tuple[str, str]:
    system = next((m["content"] for m in trajectory.messages if m["role"] == "system"), "")
    first = next(m for m in trajectory.messages if m["role"] != "system")
    return str(system), str(first["content"])


def _prompt_messages(trajectory: Trajectory) -> list[Message]:
    """The chat before the first reply (system prompt and first observation)."""
    roles = [m["role"] for m in trajectory.messages]
    end = roles.index("assistant") if "assistant" in roles else len(roles)
    return list(trajectory.messages[:end])


class _ScoredReply(TurnStrategy):
    """Scores a reply already written (a refinement) as the first action in a fresh env of its task."""

    def __init__(self, row: Trajectory, text: str, finish_reason: str, span: tuple[int, int]):
        self.row, self.text, self.finish_reason, self.span = row, text, finish_reason, span

    async def act(self, turn: int) -> str | None:
        return self.text

    async def record(self, turn: int, action: str, step: Step) -> bool:
        obs, info = observation_text(step.observation), jsonable(step.info)
        self.row.turns = [Turn(action, obs, step.reward, True, False, info, self.finish_reason, self.span)]
        self.row.success, self.row.terminated = bool(step.info.get("success", False)), True
        return False

    def fail(self, error: str) -> None:
        self.row.error, self.row.success, self.row.terminated = error, False, False
        self.row.turns = [Turn(self.text, "", 0.0, False, False, {}, self.finish_reason, self.span)]


async def refine(
    policy: Policy,
    trajectories: Sequence[Trajectory],
    critic: Critic,
    sampling: SamplingParams,
    *,
    config: RolloutConfig | None = None,
) -> list[Trajectory]:
    """Critique each (single-turn) trajectory, let `policy` refine it, and score the refinements.

    Args:
        policy: the policy that refines (the one being trained).
        trajectories: first replies to critique (their first turn is used).
        critic: writes the critiques.
        sampling: sampling parameters of the refinements.
        config: how the scoring envs run (`env_executor`, `step_timeout_s`, `max_concurrency`).

    Returns:
        One refinement per trajectory, as a one-turn trajectory of the *original* prompt (token ids:
        the original prompt's ids + the refinement's sampled ids); its `algo` is a `Refinement` with the
        critique and its turn's info is the env's. A refinement whose generation or scoring env failed
        has `error` set (and no reward).
    """
    requests = []
    for t in trajectories:
        if not t.turns:
            raise ValueError(f"trajectory {t.env_id} seed={t.seed} has no reply to critique")
        _, question = _question(t)
        first = t.turns[0]
        expert = t.turns[0].info.get("expert_action")
        requests.append(CritiqueRequest(question, first.action, t.success, first.observation, expert))
    critiques = await critic.critique(requests)
    gen_requests = []
    for i, (t, c) in enumerate(zip(trajectories, critiques, strict=True)):
        system, question = _question(t)
        messages = refinement_messages(system, question, t.turns[0].action, c)
        seed = None if sampling.seed is None else sampling.seed + 7919 * i
        gen_requests.append(
            GenerationRequest(messages=tuple(messages), sampling=replace(sampling, seed=seed))
        )
    generations = await policy.generate(gen_requests)
    rows, jobs = [], []
    driver = EpisodeDriver(config or RolloutConfig())
    for t, c, gen in zip(trajectories, critiques, generations, strict=True):
        prompt = list(t.token_ids[: t.prompt_length])
        ids = list(gen.token_ids)
        row = Trajectory(
            env_id=t.env_id,
            seed=t.seed,
            group_index=t.group_index,
            sample_index=t.sample_index,
            task_id=t.task_id,
            agent=t.agent,
            messages=[*_prompt_messages(t), {"role": "assistant", "content": gen.text}],
            token_ids=prompt + ids,
            loss_mask=[0] * len(prompt) + [1] * len(ids),
            logprobs=[0.0] * len(prompt) + [float(x) for x in (gen.logprobs or [0.0] * len(ids))],
            prompt_length=len(prompt),
            env_kwargs=dict(t.env_kwargs),
            algo=Refinement(c),
        )
        rows.append(row)
        if gen.finish_reason == "error":
            row.error = f"EpisodeError: refinement failed: {gen.error}"
            continue
        span = (len(prompt), len(row.token_ids)) if ids else (0, 0)
        strategy = _ScoredReply(row, gen.text, gen.finish_reason, span)
        episode = Episode(
            partial(make, t.env_id, **t.env_kwargs), t.seed, label=f"{t.env_id} seed={t.seed} (refinement)"
        )
        jobs.append(partial(driver.run, episode, strategy))
    try:
        await driver.run_all(jobs)
    finally:
        driver.close()
    return rows


REVISE_INSTRUCTION = "Revise your action using the critique. Reply with your final action only."


@dataclass
class GuidedEpisode:
    """One critique-guided episode (CGI §6.3): at each step a candidate, a critique, a refined action.

    Attributes:
        refined_rows: per step, the refined action as a row after (history, candidate, critique).
        direct_rows: per step, the same refined action as a row after the history alone.
        candidates: per step, the candidate action text.
        critiques: per step, the critique text.
        success: the env's success at the end.
        reward: the episode return (of the refined actions the env executed).
        requests: per step, what the critic was asked (critic training data, `trainers/critic.py`).
        error: why the episode failed (env crash, step timeout, generation error), else None; the
            lists then hold the steps completed before.
    """

    refined_rows: list[Trajectory]
    direct_rows: list[Trajectory]
    candidates: list[str]
    critiques: list[str]
    success: bool = False
    reward: float = 0.0
    requests: list[CritiqueRequest] = field(default_factory=list)
    error: str | None = None


class CritiqueGuidedRunner:
    """Runs the actor with a critic in the loop (CGI): candidate -> critique -> refined action -> env.

    The env executes only the refined action; the history keeps the refined action (the candidate and
    critique exchange is not part of later prompts). Rule critics judge a candidate against the env's
    `expert_action` with `matcher` (they cannot execute it first); a `PolicyCritic` reviews it freely.

    Args:
        policy: the actor (with a tokenizer, rows carry exact token ids).
        critic: the critic.
        sampling: the actor's sampling parameters.
        matcher: action comparison for rule critics' verdicts.
        max_turns: cap on steps (None: the env's own limit).
        config: how env calls run (`env_executor`, `step_timeout_s`) and how many episodes at once
            (`max_concurrency`); its sampling and turn settings are not used.
        env_factory: builds the env of a task (default: `task_env`, i.e. `palaestra.make` or the task's server).
    """

    def __init__(
        self,
        policy: Policy,
        critic: Critic,
        *,
        sampling: SamplingParams,
        matcher: Callable[[str, str], object] | None = None,
        max_turns: int | None = None,
        config: RolloutConfig | None = None,
        env_factory: Callable[[Task], gym.Env] | None = None,
    ):
        self.policy, self.critic, self.sampling = policy, critic, sampling
        self.matcher, self.max_turns = matcher, max_turns
        self.env_factory = env_factory or task_env
        self.chat = TokenChat(policy.tokenizer) if policy.tokenizer is not None else None
        self.config = config or RolloutConfig()

    async def run(self, tasks: Sequence[Task], group_size: int = 1) -> list[GuidedEpisode]:
        """`group_size` episodes of every task, ordered by (task, sample); a failed one has `error` set."""
        return await run_samples(
            self.config, tasks, group_size, lambda task, g, s, driver: self.episode(task, g, s, driver=driver)
        )

    async def episode(
        self, task: Task, group: int = 0, sample: int = 0, *, driver: EpisodeDriver | None = None
    ) -> GuidedEpisode:
        """One episode; never raises for env or generation failures (see `GuidedEpisode.error`)."""
        strategy = CritiqueGuidedTurns(self, task, group, sample)
        episode = Episode(
            partial(self.env_factory, task),
            task.seed,
            task.options,
            self.max_turns,
            f"{task.env_id} seed={task.seed} (critique-guided)",
        )
        await run_one(self.config, episode, strategy, driver)
        return strategy.out

    async def _reply(
        self, messages: list[Message], task: Task, tag: str
    ) -> tuple[str, list[int], list[float]]:
        seed = tagged_seed(self.sampling.seed, task.seed, tag)
        prompt = tuple(self.chat.prompt_ids(messages)) if self.chat is not None else None
        request = GenerationRequest(
            messages=tuple(messages), sampling=replace(self.sampling, seed=seed), prompt_token_ids=prompt
        )
        (gen,) = await self.policy.generate([request])
        if gen.finish_reason == "error":
            raise EpisodeError(f"generation failed: {gen.error}")
        return gen.text, list(gen.token_ids), [float(x) for x in (gen.logprobs or [0.0] * len(gen.token_ids))]

    def _row(
        self,
        task: Task,
        group: int,
        sample: int,
        messages: list[Message],
        text: str,
        ids: list[int],
        data: GuidedStep,
    ) -> Trajectory:
        prompt = self.chat.prompt_ids(messages) if self.chat is not None and ids else []
        row = Trajectory(
            env_id=task.env_id,
            seed=task.seed,
            group_index=group,
            sample_index=sample,
            agent=self.policy.name,
            messages=[*messages, {"role": "assistant", "content": text}],
            token_ids=prompt + ids,
            loss_mask=[0] * len(prompt) + [1] * len(ids),
            logprobs=[0.0] * (len(prompt) + len(ids)),
            prompt_length=len(prompt),
            env_kwargs=dict(task.env_kwargs),
            algo=data,
        )
        span = (len(prompt), len(row.token_ids)) if ids else (0, 0)
        row.turns = [Turn(text, "", 0.0, False, False, {}, "stop", span)]
        return row


class CritiqueGuidedTurns(TurnStrategy):
    """The CGI strategy: the env receives the refined action (candidate -> critique -> refinement)."""

    def __init__(self, runner: CritiqueGuidedRunner, task: Task, group: int, sample: int):
        self.runner, self.task, self.group, self.sample = runner, task, group, sample
        self.out = GuidedEpisode([], [], [], [])
        self.history: list[Message] = []
        self.observation: Any = ""
        self.info: dict[str, Any] = {}
        self.pending: tuple[Trajectory, Trajectory, str, str, CritiqueRequest] | None = None

    async def start(self, env: gym.Env, observation: Any, info: dict[str, Any]) -> None:
        system = getattr(env.unwrapped, "system_prompt", "")
        self.history = [{"role": "system", "content": system}] if system else []
        self.history.append({"role": "user", "content": observation_text(observation)})
        self.observation, self.info = observation, info

    async def act(self, turn: int) -> str | None:
        runner, task, history = self.runner, self.task, self.history
        tag = f"{self.group}/{self.sample}/{turn}"
        candidate, _, _ = await runner._reply(history, task, "a" + tag)
        expert = self.info.get("expert_action")
        correct = bool(
            expert is not None
            and runner.matcher is not None
            and getattr(runner.matcher(candidate, str(expert)), "exact", False)
        )
        request = CritiqueRequest(observation_text(self.observation), candidate, correct, "", expert)
        (critique,) = await runner.critic.critique([request])
        guided = [*history, {"role": "assistant", "content": candidate}]
        guided.append({"role": "user", "content": f"Critique:\n{critique}\n\n{REVISE_INSTRUCTION}"})
        refined, ids, _ = await runner._reply(guided, task, "r" + tag)
        data = GuidedStep(turn, candidate, critique, with_critique=True)
        refined_row = runner._row(task, self.group, self.sample, guided, refined, ids, data)
        direct = replace(data, with_critique=False)
        direct_row = runner._row(task, self.group, self.sample, history, refined, ids, direct)
        self.pending = (refined_row, direct_row, candidate, critique, request)
        return refined

    async def record(self, turn: int, action: str, step: Step) -> bool:
        assert self.pending is not None
        refined_row, direct_row, candidate, critique, request = self.pending
        out = self.out
        out.requests.append(request)
        out.refined_rows.append(refined_row)
        out.direct_rows.append(direct_row)
        out.candidates.append(candidate)
        out.critiques.append(critique)
        out.reward += step.reward
        out.success = bool(step.info.get("success", False))
        self.history += [
            {"role": "assistant", "content": action},
            {"role": "user", "content": observation_text(step.observation)},
        ]
        self.observation, self.info = step.observation, step.info
        return True

    def fail(self, error: str) -> None:
        self.out.error, self.out.success = error, False
