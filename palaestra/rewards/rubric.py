"""Scoring an episode's end with a rubric: gates first, then the weighted sum of the criteria.

    total = 0                                   if a gate scored below its pass_at
    total = sum_i weight_i * score_i            otherwise (divided by sum_i weight_i when normalize)

Gates are scored first, in their order, and the first one that fails ends the scoring: the other
criteria (judges among them) are not asked. Text checks score 1 or 0; a judge scores in [0, 1].
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from palaestra.rewards.judge import Judge, Verdict, shared_judge
from palaestra.rewards.spec import Criterion, JudgeConfig, RewardSpec, resolve_callable

__all__ = ["RewardContext", "Rubric", "RubricScore"]


@dataclass(frozen=True)
class RewardContext:
    """What a criterion sees at the end of an episode.

    Attributes:
        task: the episode's first observation (the task as the agent read it).
        reply: the agent's final reply (the action that ended the episode).
        info: the env's `info` of the final step.
        env_reward: the env's reward for the final step.
        env_return: the sum of the env's rewards over the episode.
    """

    task: str
    reply: str
    info: Mapping[str, Any] = field(default_factory=dict)
    env_reward: float = 0.0
    env_return: float = 0.0


@dataclass(frozen=True)
class RubricScore:
    """A rubric's score of one episode.

    Attributes:
        total: the rubric's score.
        scores: each criterion's score; None for criteria skipped after a failed gate.
        failed_gate: the gate that zeroed the rubric, or None.
        verdicts: each judge criterion's verdict.
    """

    total: float
    scores: dict[str, float | None]
    failed_gate: str | None = None
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    @property
    def errors(self) -> dict[str, str]:
        """The judges' errors (their criteria scored the fallback)."""
        return {name: v.error for name, v in self.verdicts.items() if v.error is not None}

    def record(self) -> dict[str, Any]:
        """A JSON record for the step's info."""
        return {
            "total": self.total,
            "scores": dict(self.scores),
            "failed_gate": self.failed_gate,
            "verdicts": {name: v.record() for name, v in self.verdicts.items()},
            "errors": self.errors,
        }


class Rubric:
    """A `RewardSpec` ready to score episodes.

    Args:
        spec: the rubric.
        judges: the judge that scores each judge criterion, by the criterion's name (default: the
            process's shared judge for its policy, `shared_judge`).
    """

    def __init__(self, spec: RewardSpec, judges: Mapping[str, Judge] | None = None):
        self.spec = spec
        self._judges = dict(judges or {})
        self._functions: dict[str, Callable[..., Any]] = {
            c.label: resolve_callable(c.function) for c in spec.criteria if c.function is not None
        }

    def judge(self, criterion: Criterion) -> Judge:
        assert criterion.judge is not None, criterion
        if criterion.label not in self._judges:
            self._judges[criterion.label] = shared_judge(criterion.judge)
        return self._judges[criterion.label]

    def score(self, ctx: RewardContext) -> RubricScore:
        """Score one episode's end (user functions' exceptions propagate; judges never raise)."""
        criteria = self.spec.criteria
        scores: dict[str, float | None] = {c.label: None for c in criteria}
        verdicts: dict[str, Verdict] = {}
        ordered = [c for c in criteria if c.gate] + [c for c in criteria if not c.gate]
        for criterion in ordered:
            value, verdict = self._criterion(criterion, ctx)
            scores[criterion.label] = value
            if verdict is not None:
                verdicts[criterion.label] = verdict
            if criterion.gate and value < criterion.pass_at:
                return RubricScore(0.0, scores, criterion.label, verdicts)
        total = sum(c.weight * (scores[c.label] or 0.0) for c in criteria)
        if self.spec.normalize:
            total /= sum(c.weight for c in criteria)
        return RubricScore(total, scores, None, verdicts)

    def _criterion(self, c: Criterion, ctx: RewardContext) -> tuple[float, Verdict | None]:
        if c.kind == "judge":
            assert isinstance(c.judge, JudgeConfig)
            verdict = self.judge(c).verdict(c.judge, ctx.task, ctx.reply)
            return verdict.score, verdict
        if c.kind == "python":
            return _number(self._functions[c.label](ctx), c), None
        return _builtin(c, ctx), None


def _builtin(c: Criterion, ctx: RewardContext) -> float:
    """The score of a criterion of a built-in kind."""
    reply = ctx.reply if c.case_sensitive else ctx.reply.casefold()
    text = c.text if c.case_sensitive or c.text is None else c.text.casefold()
    if c.kind == "env_reward":
        return float(ctx.env_reward if c.of == "final" else ctx.env_return)
    if c.kind == "success":
        return float(bool(ctx.info.get("success", False)))
    if c.kind == "regex":
        assert c.pattern is not None
        flags = 0 if c.case_sensitive else re.IGNORECASE
        return float(re.search(c.pattern, ctx.reply, flags) is not None)
    if c.kind == "contains":
        assert text is not None
        return float(text in reply)
    assert c.kind == "exact" and text is not None, c.kind
    return float(reply.strip() == text.strip())


def _number(value: Any, c: Criterion) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    raise TypeError(
        f"criterion {c.label!r}: {c.function} returned {type(value).__name__}, not a number or bool"
    )
