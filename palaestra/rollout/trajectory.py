"""Trajectory records: what one episode leaves behind for trainers, evaluation and viewers.

A `Trajectory` keeps both views of an episode:
    * per-turn records (`Turn`): the reply, what the env answered, the step reward, the env's info;
    * the flat token sequence the policy saw and produced (`token_ids`), with `loss_mask` = 1 exactly on
      sampled assistant tokens and `logprobs` aligned to it (0.0 where the mask is 0).
Text-only policies (scripted, openai) leave the token fields empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from palaestra.agents.base import Message

__all__ = ["Trajectory", "Turn"]


@dataclass
class Turn:
    """One action and the env's answer.

    Attributes:
        action: the assistant's reply text.
        observation: what the env said back.
        reward: the step reward.
        terminated: the env ended the task at this step.
        truncated: an outside limit (turns, context, time) ended the episode at this step.
        info: the env's info after the step (JSON-serializable values).
        finish_reason: why generation stopped ("stop", "length", "error").
        token_span: [start, end) of this reply's sampled ids in `Trajectory.token_ids`; (0, 0) if text-only.
    """

    action: str
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    finish_reason: str = "stop"
    token_span: tuple[int, int] = (0, 0)

    @property
    def format_error(self) -> str | None:
        return self.info.get("format_error")


@dataclass
class Trajectory:
    """One episode of one policy in one env.

    Attributes:
        env_id: the env's registered id.
        seed: the seed `reset` got (the task).
        group_index: index of the task in its rollout batch; samples of one task share it.
        sample_index: index of this sample within its group (0..group_size-1).
        task_id: the env's stable task identifier.
        agent: the policy's name.
        messages: the chat: system, first observation, then alternating replies and env messages.
        turns: per-step records.
        token_ids: the exact token sequence (prompt + replies + env deltas); empty if text-only.
        loss_mask: 1 on sampled assistant tokens, 0 elsewhere.
        logprobs: sampling logprob of each token where loss_mask is 1, else 0.0.
        prompt_length: number of tokens of the first prompt.
        success: the env's `success` at the end.
        terminated: the env ended the task (vs. truncated by a limit or an error).
        truncated: a limit ended the episode.
        error: why the episode failed (env crash, step timeout, generation error), else None.
        env_kwargs: the kwargs the env was made with.
    """

    env_id: str
    seed: int
    group_index: int = 0
    sample_index: int = 0
    task_id: str = ""
    agent: str = ""
    messages: list[Message] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    prompt_length: int = 0
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    error: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def reward(self) -> float:
        """Undiscounted episode return (sum of step rewards)."""
        return float(sum(t.reward for t in self.turns))

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    @property
    def num_generated_tokens(self) -> int:
        return int(sum(self.loss_mask))

    @property
    def num_format_errors(self) -> int:
        return sum(t.format_error is not None for t in self.turns)

    @property
    def step_rewards(self) -> list[float]:
        return [t.reward for t in self.turns]

    def check(self) -> None:
        """Assert the token fields are aligned (internal invariant)."""
        n = len(self.token_ids)
        assert len(self.loss_mask) == n and len(self.logprobs) == n, (
            f"misaligned trajectory: {n} ids, {len(self.loss_mask)} mask, {len(self.logprobs)} logprobs"
        )
        for turn in self.turns:
            start, end = turn.token_span
            assert 0 <= start <= end <= n, f"token span {turn.token_span} outside sequence of {n}"
