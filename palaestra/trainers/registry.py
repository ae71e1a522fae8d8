"""The algorithm registry: an algorithm's name -> its config class and trainer class.

An algorithm is one module that defines its config (an `AlgorithmConfig`) and its trainer (a `Trainer`)
and registers them under its name:

    register_algorithm("toy", config=ToyConfig, trainer=ToyTrainer)

`TrainConfig` validates `algorithm:` through `resolve_algorithm(name)`, which finds the module of a
name that is not registered yet and imports it (nothing is imported for the algorithms a run does not
use):

    * palaestra's own algorithms: a table of name -> module below;
    * a third-party package: an entry point in the group `palaestra.algorithms`, named after the
      algorithm, whose value is the module (imported for its `register_algorithm` call) or a
      zero-argument callable that calls it;
    * any importable module: `name: my_pkg.algos:toy` imports `my_pkg.algos`, then looks up `toy`;
      or the training config's top-level `imports: [my_pkg.algos]`, imported before validation.

An unknown name raises `UnknownAlgorithmError`, which names close matches.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from palaestra.trainers.core.config import AlgorithmConfig
    from palaestra.trainers.core.trainer import Trainer

__all__ = [
    "ENTRY_POINT_GROUP",
    "AlgorithmSpec",
    "UnknownAlgorithmError",
    "algorithm_names",
    "builtin_algorithms",
    "import_modules",
    "register_algorithm",
    "resolve_algorithm",
    "split_reference",
]

ENTRY_POINT_GROUP = "palaestra.algorithms"

_BUILTIN = {
    "grpo": "palaestra.trainers.grpo",
    "arpo": "palaestra.trainers.arpo",
    "gigpo": "palaestra.trainers.gigpo",
    "semi_online": "palaestra.trainers.semi_online",
    "critique_grpo": "palaestra.trainers.critique_grpo",
    "cgi": "palaestra.trainers.cgi",
}
"""palaestra's own algorithms: name -> the module that registers it (imported on first use)."""


@dataclass(frozen=True)
class AlgorithmSpec:
    """A registered algorithm.

    Attributes:
        name: the name `algorithm.name` selects it by.
        config: its options (the `algorithm:` section).
        trainer: its trainer, constructed as `trainer(train_config, **kwargs)`.
    """

    name: str
    config: type[AlgorithmConfig]
    trainer: type[Trainer]


class UnknownAlgorithmError(ValueError):
    """`algorithm.name` names no registered algorithm; the message names close matches."""


_registry: dict[str, AlgorithmSpec] = {}


def register_algorithm(
    name: str, *, config: type[AlgorithmConfig], trainer: type[Trainer], override: bool = False
) -> AlgorithmSpec:
    """Register an algorithm under `name` (call it at the bottom of the algorithm's module).

    Args:
        name: the name configs select it by (`algorithm.name`); no ":" (that marks `module:name`).
        config: its config class, whose `name` field defaults to `name`.
        trainer: its trainer class.
        override: replace an existing registration instead of raising.

    Returns:
        The registered spec.

    Raises:
        ValueError: the name is taken (and `override` is False), holds ":", or differs from the
            config's `name` default.
    """
    if ":" in name or not name:
        raise ValueError(f"algorithm name {name!r}: expected a non-empty name without ':'")
    default = config.model_fields["name"].default
    if default != name:
        raise ValueError(
            f"{config.__name__}.name defaults to {default!r} but is registered as {name!r}; declare "
            f'name: Literal["{name}"] = "{name}"'
        )
    if name in _registry and not override and _registry[name] != AlgorithmSpec(name, config, trainer):
        raise ValueError(f"algorithm {name!r} is already registered; pass override=True to replace it")
    spec = AlgorithmSpec(name, config, trainer)
    _registry[name] = spec
    return spec


def split_reference(name: str) -> tuple[str | None, str]:
    """`"my_pkg.algos:toy"` -> `("my_pkg.algos", "toy")`; a plain name -> `(None, name)`."""
    module, sep, short = name.rpartition(":")
    return (module, short) if sep else (None, name)


def import_modules(modules: list[str]) -> None:
    """Import modules for their registrations (a training config's `imports`).

    Raises:
        ValueError: a module cannot be imported (the message names it and the import error).
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"cannot import {module!r}: {exc}") from exc


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(name: str) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            target = ep.load()
            if callable(target):
                target()


def algorithm_names() -> list[str]:
    """Every algorithm name known without importing one: registered, built-in, and entry points."""
    return sorted({*_registry, *_BUILTIN, *_entry_points()})


def builtin_algorithms() -> list[str]:
    """palaestra's own algorithm names, grpo first (the configuration reference documents these)."""
    return list(_BUILTIN)


def resolve_algorithm(name: str) -> AlgorithmSpec:
    """The algorithm registered as `name` (or `module:name`), importing its module if needed.

    Raises:
        UnknownAlgorithmError: nothing registers that name; the message names close matches.
        ValueError: the module of `module:name` cannot be imported.
    """
    module, short = split_reference(name)
    if module is not None:
        import_modules([module])
    if short not in _registry and module is None:
        if short in _BUILTIN:
            importlib.import_module(_BUILTIN[short])
        elif short in _entry_points():
            _load_entry_point(short)
    if short in _registry:
        return _registry[short]
    known = algorithm_names()
    close = difflib.get_close_matches(short, known, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    where = f" (module {module} registers none by that name)" if module is not None else ""
    raise UnknownAlgorithmError(
        f"unknown algorithm {short!r}{where}.{hint} Known: {', '.join(known)}; a third-party one is "
        "found through `imports: [module]`, `name: module:name` or a `palaestra.algorithms` entry point"
    )
