"""Reward specs: a rubric of criteria (weights, gates) and the LLM judges among them, as pydantic models.

A spec is written in YAML on an env entry of a training config (`envs.train[].reward`) and validated
before anything is built: a regex that does not compile, a `module:function` that does not import or a
judge backend spec that `palaestra.agents.spec.check_spec` rejects is one line naming the criterion.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "Criterion",
    "CriterionKind",
    "JudgeConfig",
    "RewardSpec",
    "resolve_callable",
]

DEFAULT_JUDGE_PROMPT = """\
You grade an assistant's reply against a rubric.

The task the assistant was given:
{task}

The rubric:
{rubric}

The reply to grade:
{reply}

Judge how well the reply meets the rubric. Answer with one short sentence of reasoning, then a last \
line of the form "Score: N/{scale}", where N is a whole number from 0 (fails the rubric) to {scale} \
(fully meets it)."""

CriterionKind = Literal["env_reward", "success", "regex", "contains", "exact", "python", "judge"]

_KIND_FIELDS: dict[str, set[str]] = {  # the kind-specific fields each kind takes
    "env_reward": {"of"},
    "success": set(),
    "regex": {"pattern", "case_sensitive"},
    "contains": {"text", "case_sensitive"},
    "exact": {"text", "case_sensitive"},
    "python": {"function"},
    "judge": {"judge"},
}
_REQUIRED: dict[str, str] = {"regex": "pattern", "contains": "text", "exact": "text", "python": "function"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve_callable(reference: str) -> Callable[..., Any]:
    """The callable `module:attribute` names (the module is imported).

    Raises:
        ValueError: one line: a malformed reference, a module that does not import, a missing or
            non-callable attribute.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{reference!r} must look like module.path:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{reference!r}: cannot import {module_name!r} ({exc})") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{reference!r}: module {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{reference!r} is a {type(target).__name__}, not a callable")
    return target


class JudgeConfig(_Model):
    """An LLM judge: a policy backend scores the reply against a written rubric."""

    policy: str = Field(
        description="The judge: an agent spec (`hf:smollm2-135m`, `openai:MODEL`, `vllm:/path`, "
        "`scripted:...`; palaestra.agents.spec), or `module:function` returning a Policy (a custom judge)."
    )
    policy_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the judge's backend (e.g. base_url for openai, device for hf).",
    )
    rubric: str = Field(min_length=1, description="What a good reply does, in words: the judge's rubric.")
    prompt: str = Field(
        None,  # filled in by _default_prompt, so the saved config holds the text
        validate_default=True,
        description="The judge's prompt template; {task}, {rubric}, {reply} and {scale} are filled in (other "
        "braces stay as written). null: palaestra's built-in prompt (`palaestra.rewards.DEFAULT_JUDGE_PROMPT`), "
        "whose text is filled in here, so the run's saved config holds the prompt it judged with.",
    )
    system_prompt: str = Field("", description="A system message before the prompt ('' for none).")
    prompt_version: str = Field(
        "v1",
        description="Your label for this prompt, recorded with every verdict next to the prompt's content hash.",
    )
    scale: float = Field(
        10.0, gt=0, description="The top of the judge's scale; a verdict N/scale scores N/scale."
    )
    max_new_tokens: int = Field(128, ge=1, description="Token budget of the judge's reply.")
    temperature: float = Field(0.0, ge=0, description="The judge's sampling temperature (0 = greedy).")
    seed: int = Field(0, description="The judge's sampling seed.")
    timeout_s: float = Field(
        120.0, gt=0, description="A verdict that takes longer is an error (the fallback)."
    )
    fallback: float = Field(
        0.0,
        description="The score of an unparseable verdict, a judge error or a timeout (the error is recorded).",
    )
    cache: bool = Field(
        True,
        description="Keep verdicts on disk by the content hash of prompt, rubric, task, reply, judge and "
        "sampling, so a resumed or repeated run does not judge the same content again.",
    )
    cache_dir: str | None = Field(
        None, description="Folder of the verdict cache (None: CACHE/judge, CACHE = palaestra's cache folder)."
    )

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        from palaestra.agents.spec import BACKENDS

        if value.partition(":")[0] not in BACKENDS:
            resolve_callable(value)
        return value

    @field_validator("prompt", mode="before")
    @classmethod
    def _default_prompt(cls, value: Any) -> Any:
        return DEFAULT_JUDGE_PROMPT if value is None else value

    @field_validator("prompt")
    @classmethod
    def _has_reply(cls, value: str) -> str:
        if "{reply}" not in value:
            raise ValueError(
                "the judge prompt has no {reply} placeholder, so the judge would not see the reply"
            )
        return value

    @model_validator(mode="after")
    def _backend_options(self) -> JudgeConfig:
        from palaestra.agents.spec import BACKENDS, check_spec

        if self.policy.partition(":")[0] in BACKENDS:
            check_spec(self.policy, **self.policy_options)
        elif self.policy_options:
            raise ValueError(
                f"policy_options are for backend specs; {self.policy} is a function (set them there)"
            )
        return self

    @property
    def prompt_hash(self) -> str:
        """The content hash of what the judge is told (prompt template, system prompt, rubric, scale)."""
        text = "\x00".join([self.system_prompt, self.prompt, self.rubric, f"{self.scale:g}"])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class Criterion(_Model):
    """One criterion of a rubric; `kind` says which of the kind-specific keys it takes."""

    name: str = Field("", description="Label in the step's info (default: the kind; names must be unique).")
    kind: CriterionKind = Field(
        description="env_reward: the env's reward; success: info['success'] as 1/0; regex, contains, exact: "
        "1/0 checks of the final reply; python: a function of the episode; judge: an LLM judge's score in [0, 1]."
    )
    weight: float = Field(1.0, description="Weight of the criterion's score in the rubric's sum.")
    gate: bool = Field(
        False,
        description="A gate: a score below pass_at zeroes the whole rubric (gates are checked first, so "
        "a failed gate skips the judges).",
    )
    pass_at: float = Field(1.0, description="gate: the score at or above which the gate passes.")
    of: Literal["final", "return"] = Field(
        "final", description="env_reward: the final step's reward, or the episode's sum of rewards."
    )
    pattern: str | None = Field(None, description="regex: a Python regular expression searched in the reply.")
    text: str | None = Field(
        None, description="contains, exact: the text to find in, or to equal, the reply."
    )
    case_sensitive: bool = Field(True, description="regex, contains, exact: whether case matters.")
    function: str | None = Field(
        None,
        description="python: `module:function` called with a RewardContext (task, reply, info, rewards); "
        "returns a number or a bool.",
    )
    judge: JudgeConfig | None = Field(None, description="judge: the LLM judge.")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Criterion:
        label = self.name or self.kind
        specific = {f for fields in _KIND_FIELDS.values() for f in fields}
        allowed = _KIND_FIELDS[self.kind]
        fields = type(self).model_fields
        # a key of another kind at its default is no error: a saved config lists every key
        stray = sorted(f for f in specific - allowed if getattr(self, f) != fields[f].default)
        if stray:
            raise ValueError(
                f"criterion {label!r} (kind {self.kind}) does not take {', '.join(stray)}; "
                f"it takes {', '.join(sorted(allowed)) or 'no kind-specific keys'}"
            )
        needed = "judge" if self.kind == "judge" else _REQUIRED.get(self.kind)
        if needed and getattr(self, needed) is None:
            raise ValueError(f"criterion {label!r} (kind {self.kind}) needs {needed}")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(
                    f"criterion {label!r}: pattern {self.pattern!r} is not a regex ({exc})"
                ) from None
        if self.function is not None:
            resolve_callable(self.function)
        return self

    @property
    def label(self) -> str:
        return self.name or self.kind


class RewardSpec(_Model):
    """A reward rubric: criteria scored on the episode's final reply, gated, weighted and summed."""

    criteria: list[Criterion] = Field(min_length=1, description="The rubric's criteria.")
    mode: Literal["replace", "add"] = Field(
        "replace",
        description="replace: the episode's final reward becomes the rubric's score; add: the score is "
        "added to the env's final reward.",
    )
    normalize: bool = Field(
        False,
        description="Divide the weighted sum by the sum of the weights (a score in [0, 1] for 0/1 criteria).",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> RewardSpec:
        labels = [c.label for c in self.criteria]
        repeated = sorted({n for n in labels if labels.count(n) > 1})
        if repeated:
            raise ValueError(f"criteria names {repeated} repeat; give each criterion its own name")
        if self.normalize and sum(c.weight for c in self.criteria) == 0:
            raise ValueError("normalize=true needs weights that do not sum to 0")
        return self

    @property
    def judged(self) -> bool:
        """Whether a criterion calls a judge or user code (then the env's steps block)."""
        return any(c.kind in ("judge", "python") for c in self.criteria)
