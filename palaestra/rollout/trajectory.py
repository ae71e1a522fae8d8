"""Trajectory records: what one episode leaves behind for trainers, evaluation and viewers.

A `Trajectory` keeps both views of an episode:
    * per-turn records (`Turn`): the reply, what the env answered, the step reward, the env's info;
    * the flat token sequence the policy saw and produced (`token_ids`), with `loss_mask` = 1 exactly on
      sampled assistant tokens, `logprobs` aligned to it (0.0 where the mask is 0) and `token_versions`
      (the policy version that sampled each token, -1 where the mask is 0).
Text-only policies (scripted, openai) leave the token fields empty; rows built outside the rollout
(refinements, demonstrations) and files saved before versions were recorded leave `token_versions` empty.

`Turn.info` is exactly what the env returned. What an algorithm records about a trajectory (a
semi-online step's expert action and returns, a Critique-GRPO refinement's critique, a critique-guided
step's candidate) goes into `Trajectory.algo`, one small frozen dataclass per kind, saved with it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

from palaestra.agents.base import Message

__all__ = ["AlgoData", "GuidedStep", "Refinement", "SemiOnlineStep", "Trajectory", "Turn", "algo_from_json"]

D = TypeVar("D", "SemiOnlineStep", "Refinement", "GuidedStep")


@dataclass(frozen=True)
class SemiOnlineStep:
    """A semi-online training row (`rollout/semi_online.py`): one step of a rollout on the expert's path.

    Attributes:
        step: the step index t.
        expert_action: the expert's action a*_t.
        match: the policy's action matched it exactly (r_acc).
        type_match: same kind of action (r_type).
        parsed: the action could be read (r_format).
        patched: the expert's action replaced the policy's in the history.
        env_reward: the env's reward for the action it took (0.0 where the rollout stopped here).
        patch_thought: the thought written for a patched step (None: thought-free or not patched).
        step_return: R_t, set by the trainer (`trainers/semi_online.annotate_returns`).
        episode_return: R(τ) of the row's rollout, set by the trainer.
    """

    kind: ClassVar[str] = "semi_online_step"
    step: int
    expert_action: str
    match: bool
    type_match: bool
    parsed: bool
    patched: bool
    env_reward: float
    patch_thought: str | None = None
    step_return: float | None = None
    episode_return: float | None = None

    def returns(self) -> tuple[float, float]:
        """(R_t, R(τ)); raises if the trainer has not annotated them."""
        if self.step_return is None or self.episode_return is None:
            raise ValueError(
                f"semi-online row of step {self.step} has no step_return/episode_return; "
                "call trainers.semi_online.annotate_returns on its rollout first"
            )
        return self.step_return, self.episode_return


@dataclass(frozen=True)
class Refinement:
    """A Critique-GRPO refinement row (`rollout/critique.refine`): a reply written after a critique.

    Attributes:
        critique: the critique the refinement answered.
    """

    kind: ClassVar[str] = "refinement"
    critique: str


@dataclass(frozen=True)
class GuidedStep:
    """A critique-guided (CGI) row: the refined action of one step.

    Attributes:
        step: the step index t.
        candidate: the actor's first action.
        critique: the critic's critique of it.
        with_critique: the row's prompt holds the candidate and critique (refined row), or only the
            history (direct row).
    """

    kind: ClassVar[str] = "critique_guided"
    step: int
    candidate: str
    critique: str
    with_critique: bool


AlgoData = Union[SemiOnlineStep, Refinement, GuidedStep]  # noqa: UP007 (a runtime alias on 3.10)
_KINDS: dict[str, type[AlgoData]] = {c.kind: c for c in (SemiOnlineStep, Refinement, GuidedStep)}


def algo_to_json(data: AlgoData | None) -> str | None:
    """`Trajectory.algo` as JSON text with its `kind` (None stays None)."""
    if data is None:
        return None
    return json.dumps({"kind": data.kind, **dataclasses.asdict(data)}, ensure_ascii=False, sort_keys=True)


def algo_from_json(text: str | None) -> AlgoData | None:
    """The inverse of `algo_to_json`."""
    if text is None:
        return None
    fields = json.loads(text)
    kind = fields.pop("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown algorithm data kind {kind!r}; known: {sorted(_KINDS)}")
    return _KINDS[kind](**fields)


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
        token_versions: the policy version (number of weight updates before it) that sampled each
            token where loss_mask is 1, else -1; one reply may mix versions when the weights changed
            while it was generated (the asynchronous pipeline). Empty: not recorded.
        prompt_length: number of tokens of the first prompt.
        success: the env's `success` at the end.
        terminated: the env ended the task (vs. truncated by a limit or an error).
        truncated: a limit ended the episode.
        error: why the episode failed (env crash, step timeout, generation error), else None.
        env_kwargs: the kwargs the env was made with.
        algo: what an algorithm recorded about this trajectory (None: a plain episode).
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
    token_versions: list[int] = field(default_factory=list)
    prompt_length: int = 0
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    error: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    algo: AlgoData | None = None

    def algo_data(self, kind: type[D]) -> D:
        """`algo` as `kind`; raises if the trajectory carries none of that kind (never a default)."""
        if not isinstance(self.algo, kind):
            raise ValueError(
                f"trajectory {self.env_id} seed={self.seed} has no {kind.__name__} data (algo={self.algo!r}); "
                f"it was not produced by the rollout that records it"
            )
        return self.algo

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
    def min_version(self) -> int | None:
        """The oldest policy version among the sampled tokens (None: no versions recorded)."""
        versions = [v for v in self.token_versions if v >= 0]
        return min(versions) if versions else None

    @property
    def max_version(self) -> int | None:
        """The newest policy version among the sampled tokens (None: no versions recorded)."""
        versions = [v for v in self.token_versions if v >= 0]
        return max(versions) if versions else None

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
        assert not self.token_versions or len(self.token_versions) == n, (
            f"misaligned trajectory: {n} ids, {len(self.token_versions)} token versions"
        )
        for turn in self.turns:
            start, end = turn.token_span
            assert 0 <= start <= end <= n, f"token span {turn.token_span} outside sequence of {n}"
