"""Critiques and critique-guided refinements (Critique-GRPO §5.1-§5.2, CGI §6 of ALGORITHMS.md).

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

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from palaestra.agents.base import GenerationRequest, Message, Policy, SamplingParams
from palaestra.envs.registration import make
from palaestra.rollout.chat import observation_text
from palaestra.rollout.runner import EpisodeError
from palaestra.rollout.trajectory import Trajectory, Turn

__all__ = [
    "CRITIQUE_SYSTEM",
    "Critic",
    "CritiqueRequest",
    "PolicyCritic",
    "RuleCritic",
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
        prompts = []
        for r in requests:
            user = f"Task:\n{r.question}\n\nAttempted answer:\n{r.response}"
            if self.show_reference and r.expert is not None:
                user += f"\n\nReference answer:\n{r.expert}"
            messages = ({"role": "system", "content": CRITIQUE_SYSTEM}, {"role": "user", "content": user})
            prompts.append(GenerationRequest(messages=messages, sampling=self.sampling))
        return [g.text for g in await self.policy.generate(prompts)]


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


def _score(trajectory: Trajectory, text: str) -> tuple[float, bool, str, dict]:
    """Reward, success, observation and info of `text` as the first reply to the trajectory's task."""
    env = make(trajectory.env_id, **trajectory.env_kwargs)
    try:
        env.reset(seed=trajectory.seed)
        obs, reward, _, _, info = env.step(text)
        return float(reward), bool(info.get("success", False)), observation_text(obs), dict(info)
    finally:
        env.close()


async def refine(
    policy: Policy,
    trajectories: Sequence[Trajectory],
    critic: Critic,
    sampling: SamplingParams,
) -> list[Trajectory]:
    """Critique each (single-turn) trajectory, let `policy` refine it, and score the refinements.

    Args:
        policy: the policy that refines (the one being trained).
        trajectories: first replies to critique (their first turn is used).
        critic: writes the critiques.
        sampling: sampling parameters of the refinements.

    Returns:
        One refinement per trajectory, as a one-turn trajectory of the *original* prompt (token ids:
        the original prompt's ids + the refinement's sampled ids); its turn info has `critique`,
        `refinement: True` and the env's info.
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
    out = []
    for t, c, gen in zip(trajectories, critiques, generations, strict=True):
        if gen.finish_reason == "error":
            raise EpisodeError(f"refinement failed: {gen.error}")
        reward, success, obs, info = await asyncio.to_thread(_score, t, gen.text)
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
            success=success,
            terminated=True,
            env_kwargs=dict(t.env_kwargs),
        )
        span = (len(prompt), len(row.token_ids)) if ids else (0, 0)
        info = {**info, "critique": c, "refinement": True}
        row.turns = [Turn(gen.text, obs, reward, True, False, info, gen.finish_reason, span)]
        out.append(row)
    return out
