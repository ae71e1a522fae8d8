"""Named benchmark suites: which envs, splits, episode counts, seeds and turn limits an evaluation runs.

A suite is a YAML file in `configs/suites/` (or any path):

    name: math-core
    description: Generated math problems of the held-out split, greedy.
    include: []                      # other suites whose envs come first (e.g. `all` includes the rest)
    sampling: {max_new_tokens: 256, temperature: 0.0}
    envs:
      - id: palaestra/Math-Arith-v0
        split: test                  # becomes the env kwarg `split`
        episodes: 100                # tasks, seeds seed..seed+episodes-1
        seed: 0
        max_turns: null              # cap on the env's own turn limit
        max_new_tokens: null         # token budget per reply (default: this file's sampling.max_new_tokens)
        kwargs: {difficulty: hard}   # more env kwargs
        name: Arith-hard             # results key (default: the id without its namespace)

`load_suite("math-core")` finds `configs/suites/math-core.yaml`; errors name the key path and the fix.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["SUITES_DIR", "SamplingSection", "Suite", "SuiteEnv", "SuiteError", "list_suites", "load_suite"]

SUITES_DIR = Path(__file__).resolve().parents[2] / "configs" / "suites"
"""The bundled suites (a source checkout's `configs/suites/`)."""


class SuiteError(ValueError):
    """A suite file is missing or invalid; the message names the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuiteEnv(_Section):
    """One env of a suite (after `load_suite`, `max_new_tokens` is always set)."""

    id: str = Field(
        description="Registered env id, or `module:id` (gymnasium's form: imports module, then makes id)."
    )
    name: str | None = Field(None, description="Key in results (default: the id without its namespace).")
    split: str | None = Field(None, description="Data split, passed as the env kwarg `split` (e.g. test).")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="More env kwargs.")
    episodes: int = Field(100, ge=1, description="Tasks: seeds seed..seed+episodes-1.")
    seed: int = Field(0, ge=0, description="First task seed.")
    max_turns: int | None = Field(None, ge=1, description="Cap on turns per episode (None: the env's).")
    max_new_tokens: int | None = Field(
        None, ge=1, description="Token budget per reply (None: the defining suite's sampling.max_new_tokens)."
    )

    @property
    def key(self) -> str:
        return self.name or self.id.split(":")[-1].split("/")[-1]

    def env_kwargs(self) -> dict[str, Any]:
        """The kwargs the env is made with (`split` merged in)."""
        return {**self.kwargs, **({"split": self.split} if self.split is not None else {})}


class SamplingSection(_Section):
    """How the agent samples: `temperature`, `top_p` and `seed` of the loaded suite apply to every env."""

    max_new_tokens: int = Field(256, ge=1, description="Token budget per reply of envs that set none.")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    seed: int | None = Field(0, description="Sampling seed.")


class Suite(_Section):
    """A named benchmark: envs with their splits, episode counts, seeds and turn limits."""

    name: str = Field(description="Suite name (the file's stem by convention).")
    description: str = Field("", description="What the suite measures.")
    include: list[str] = Field(default_factory=list, description="Suites whose envs come first.")
    sampling: SamplingSection = Field(default_factory=SamplingSection)
    envs: list[SuiteEnv] = Field(default_factory=list, description="The suite's own envs.")


def list_suites(directory: str | os.PathLike[str] = SUITES_DIR) -> list[str]:
    """Names of the suites in `directory`."""
    return sorted(p.stem for p in Path(directory).glob("*.yaml"))


def _path_of(name_or_path: str | os.PathLike[str], directory: Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise SuiteError(f"suite file {path} does not exist")
        return path
    candidate = directory / f"{name_or_path}.yaml"
    if not candidate.is_file():
        suites = list_suites(directory)
        close = difflib.get_close_matches(str(name_or_path), suites, n=1, cutoff=0.6)
        known = (f"did you mean {close[0]!r}? " if close else "") + "known suites in "
        raise SuiteError(
            f"unknown suite {str(name_or_path)!r}; {known}{directory}: {', '.join(suites) or 'none'} "
            "(or pass a path to a suite .yaml)"
        )
    return candidate


def _parse(path: Path) -> Suite:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SuiteError(f"suite file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"suite file {path} must hold a mapping, got {type(raw).__name__}")
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        lines = [f"invalid suite {path}:"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(
                f"  {where}: {msg}" + (f" (got {err['input']!r})" if err["type"] != "missing" else "")
            )
        raise SuiteError("\n".join(lines)) from None


def load_suite(
    name_or_path: str | os.PathLike[str], *, directory: str | os.PathLike[str] = SUITES_DIR
) -> Suite:
    """Load a suite by name (from `directory`) or path, with its includes flattened into `envs`.

    Raises:
        SuiteError: unknown suite, invalid file, include cycle, or two envs with the same results key.
    """
    directory = Path(directory)

    def resolve(ref: str | os.PathLike[str], chain: tuple[str, ...]) -> tuple[Suite, list[SuiteEnv]]:
        suite = _parse(_path_of(ref, directory))
        if suite.name in chain:
            raise SuiteError(f"suite include cycle: {' -> '.join((*chain, suite.name))}")
        envs: list[SuiteEnv] = []
        for child in suite.include:
            envs.extend(resolve(child, (*chain, suite.name))[1])
        budget = suite.sampling.max_new_tokens
        own = [e if e.max_new_tokens else e.model_copy(update={"max_new_tokens": budget}) for e in suite.envs]
        return suite, envs + own

    suite, envs = resolve(name_or_path, ())
    seen: dict[str, SuiteEnv] = {}
    for env in envs:
        if env.key in seen:
            raise SuiteError(
                f"suite {suite.name!r} has two envs with results key {env.key!r} ({env.id}); "
                "give one a distinct `name`"
            )
        seen[env.key] = env
    if not envs:
        raise SuiteError(f"suite {suite.name!r} has no envs; add `envs:` entries or `include:` suites")
    return suite.model_copy(update={"envs": envs, "include": []})
