"""The algorithm config's base: the options the trainer core reads, and the rule for options it rejects.

Every algorithm's config (the `algorithm:` section of a training YAML) subclasses `AlgorithmConfig` and
adds its own fields. The core reads only what is declared here: the update schedule (`epochs`,
`mini_batches`) and whether the algorithm compares samples of a task (`needs_groups`). Everything else
an algorithm asks of the core (a reference model for a KL term, recomputed old logprobs, entropy with
gradients) it says through its trainer's hooks (`Trainer.needs_reference` and friends), so a config
holds only options its algorithm honours.

An option that a family of algorithms shares but one member does not honour is not a field of that
member's config; naming it in `unsupported` turns the generic "unknown key" into an error that says why.
Run folders saved before that rule hold such options at values that never changed anything for that
algorithm (`earlier_defaults`); exactly those values are dropped, so the runs still resume and export.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AlgorithmConfig"]

_Options = TypeVar("_Options", bound="AlgorithmConfig")


class AlgorithmConfig(BaseModel):
    """Base of every algorithm's options (`algorithm:` in a training config).

    A subclass sets `name` to a `Literal` of its registered name with that name as default (see
    `palaestra.trainers.registry.register_algorithm`).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # some subclasses set: options of sibling algorithms this one rejects, with the reason
    unsupported: ClassVar[dict[str, str]] = {}
    # some subclasses set: option -> the value configs saved by earlier releases hold for it (ignored then)
    earlier_defaults: ClassVar[dict[str, Any]] = {}
    # all subclasses may set: False when one sample per task is enough (no group-relative statistics)
    needs_groups: ClassVar[bool] = True

    name: str = Field(description="The registered algorithm name.")
    epochs: int = Field(1, ge=1, description="Passes over each rollout batch.")
    mini_batches: int = Field(
        1, ge=1, description="Optimizer steps per pass (rollout batch split in this many)."
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            old = cls.earlier_defaults
            data = {k: v for k, v in data.items() if not (k in old and v == old[k])}
            for key, why in cls.unsupported.items():
                if key in data:
                    name = cls.model_fields["name"].default
                    raise ValueError(f"{key} is not an option of {name}: {why}; remove algorithm.{key}")
        return data

    def async_unsupported(self) -> str | None:
        """Why this algorithm, with these options, cannot train from `rollout.pipeline=async`; None: it can.

        The asynchronous producer plays plain episodes (`RolloutRunner`) while the learner trains; an
        algorithm whose sampling strategy rolls out something else between collecting and the
        advantages (expert patches, critiques, refinements) must run synchronously.
        """
        return None

    @classmethod
    def of(cls: type[_Options], algorithm: AlgorithmConfig) -> _Options:
        """`algorithm` as this class: an algorithm's config class, or an options class it extends.

        A trainer reads its options through this (`ARPOConfig.of(config.algorithm)`), once per use.

        Raises:
            TypeError: `algorithm` is another algorithm's config (the trainer was built for another name).
        """
        if not isinstance(algorithm, cls):
            raise TypeError(
                f"algorithm.name={algorithm.name} has {type(algorithm).__name__} options, but this trainer "
                f"reads {cls.__name__}; build the trainer with palaestra.trainers.make_trainer(config)"
            )
        return algorithm
