"""`palaestra new-env NAME`: a small installable package with a working env, to edit into your own.

    NAME/
        pyproject.toml          the package, with a `palaestra.envs` entry point (installed: every palaestra
                                command knows the env)
        MODULE/__init__.py      registers the env on import (`imports: [MODULE]`, or the id `MODULE:ENV_ID`,
                                work without installing, from NAME/ or with NAME/ on PYTHONPATH)
        MODULE/env.py           the env: reverse a word in up to two tries (a `palaestra.TextEnv`)
        tests/test_env.py       runs `palaestra envs check`'s checks and plays the expert
        configs/train.yaml      GRPO on the embedded SmolLM2-135M
        README.md               the commands

The package passes `palaestra envs check` and trains as written; the folder appears whole or not at all.
"""

from __future__ import annotations

import importlib.util
import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

__all__ = ["EnvPackage", "plan_package", "write_package"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class EnvPackage:
    """What `new-env` writes.

    Attributes:
        name: the project (distribution) name, e.g. "word-game".
        module: the importable package, e.g. "word_game".
        env_class: the env class, e.g. "WordGameEnv".
        env_id: the registered id, e.g. "word_game/WordGame-v0".
        folder: where the package goes.
    """

    name: str
    module: str
    env_class: str
    env_id: str
    folder: Path

    @property
    def module_id(self) -> str:
        """The id with its module (`module:id`): names the env without installing the package."""
        return f"{self.module}:{self.env_id}"


def plan_package(name: str, parent: str | os.PathLike[str] = ".") -> EnvPackage:
    """Names and folder of the package `name` under `parent`, checked before anything is written.

    Raises:
        ValueError: one line: a name that is no valid package name or shadows an importable module, or a
            folder that exists and is not empty.
    """
    if not _NAME.match(name):
        raise ValueError(
            f"NAME {name!r}: use letters, digits, '-' and '_', starting with a letter (e.g. word-game)"
        )
    module = name.lower().replace("-", "_")
    if keyword.iskeyword(module):
        raise ValueError(f"NAME {name!r}: {module!r} is a Python keyword; pick another name")
    if importlib.util.find_spec(module) is not None:
        raise ValueError(
            f"NAME {name!r}: a module named {module!r} is already importable here and would clash; pick "
            "another name"
        )
    camel = "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name) if part)
    folder = Path(parent).expanduser() / name
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"{folder} already exists and is not an empty folder; pick another NAME or --dir")
    return EnvPackage(name, module, f"{camel}Env", f"{module}/{camel}-v0", folder)


def write_package(package: EnvPackage) -> list[Path]:
    """Write the package (built in a temporary folder beside it, then moved into place).

    Returns:
        The files written, relative to `package.folder`.
    """
    values = {
        "name": package.name,
        "module": package.module,
        "cls": package.env_class,
        "env_id": package.env_id,
        "module_id": package.module_id,
    }
    files = {Path(path): Template(text).substitute(values) for path, text in _TEMPLATES.items()}
    files = {Path(str(path).replace("MODULE", package.module)): text for path, text in files.items()}
    package.folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=package.folder.parent, prefix=f".{package.name}."))
    try:
        for path, text in files.items():
            (staging / path).parent.mkdir(parents=True, exist_ok=True)
            (staging / path).write_text(text)
        if package.folder.exists():  # an empty folder (checked by plan_package)
            package.folder.rmdir()
        staging.rename(package.folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(files)


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "0.1.0"
description = "A palaestra environment: $env_id"
requires-python = ">=3.10"
dependencies = ["palaestra"]

[project.optional-dependencies]
dev = ["pytest"]

# Installed (pip install -e .), the package registers its env for every palaestra command.
[project.entry-points."palaestra.envs"]
$module = "$module"

[tool.setuptools]
packages = ["$module"]

[tool.pytest.ini_options]
pythonpath = ["."]
"""

_INIT = '''\
"""$name: palaestra environments. Importing this package registers them.

Installed, its `palaestra.envs` entry point imports it for every palaestra command. Without installing:
name the env as `$module_id` (import $module, then make the id), or list `imports: [$module]` in a
training config, with this folder on PYTHONPATH (palaestra looks in the current folder too).
"""

import palaestra

palaestra.register_env(
    "$env_id",
    "$module.env:$cls",
    description="Reverse a word, in up to two tries",
    max_turns=2,
    reward_range=(0.0, 1.0),
)
'''

_ENV = '''\
"""$cls: reverse a word, in up to two tries. Written by `palaestra new-env`; make it your own task.

After each change run `palaestra envs check $module_id` (or `pytest tests`): it says what breaks the
contract palaestra trains on, and how to fix it.
"""

from __future__ import annotations

import difflib
from typing import Any

from palaestra import StepOutcome, TextEnv

WORDS = (
    "planet", "garden", "silver", "window", "rocket", "puzzle", "forest", "bridge",
    "candle", "island", "market", "orange", "pepper", "river", "shadow", "winter",
)  # fmt: skip


class $cls(TextEnv):
    """Reply with the given word reversed. A wrong first try is told how many letters are in place; the
    last try earns its similarity to the answer (difflib's ratio), so near misses earn something.

    `TextEnv` does the rest of gymnasium's contract: seeding (`self.np_random`), turn counting and the
    turn limit, text spaces, replies that are not text, and the info keys every palaestra env returns.
    """

    def __init__(self, *, max_tries: int = 2, render_mode: str | None = None):
        super().__init__(max_turns=max_tries, render_mode=render_mode)
        self.system_prompt = "Reverse the word you are given. Reply with the reversed word only."
        self._answer = ""

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        word = WORDS[int(self.np_random.integers(len(WORDS)))]  # only self.np_random: seeded, reproducible
        self._answer = word[::-1]
        return f"Reverse the word: {word}", {"task_id": word, "expert_action": self._answer}

    def _step(self, action: str) -> StepOutcome:
        reply = action.strip().lower()
        info = {"expert_action": self._answer}  # what a perfect agent replies now (scripted:oracle, demos)
        if not reply:
            return StepOutcome("Reply with the reversed word.", format_error="empty reply", info=info)
        if reply == self._answer:
            return StepOutcome("Correct.", reward=1.0, terminated=True, success=True, info=info)
        if self._turn + 1 < self.max_turns:
            in_place = sum(a == b for a, b in zip(reply, self._answer))
            return StepOutcome(f"{in_place} of {len(self._answer)} letters are in place. Try again.", info=info)
        similarity = difflib.SequenceMatcher(None, reply, self._answer).ratio()
        return StepOutcome(f"Wrong: it was {self._answer}.", reward=similarity, terminated=True, info=info)
'''

_TEST = '''\
"""The env passes palaestra's checks (as `palaestra envs check` runs them) and its expert solves it."""

import palaestra
from palaestra.envs.checker import run_checks

import $module  # noqa: F401  (registers $env_id)


def test_env_passes_palaestra_envs_check():
    report = run_checks("$env_id")
    assert report.ok, str(report)


def test_the_expert_solves_a_task_and_a_wrong_try_gets_a_second_chance():
    env = palaestra.make("$env_id")
    _, info = env.reset(seed=0)
    _, reward, terminated, _, info = env.step("not it")
    assert not terminated and reward == 0.0
    _, reward, terminated, _, info = env.step(info["expert_action"])
    assert terminated and reward == 1.0 and info["success"]
'''

_CONFIG = """\
# GRPO on the embedded SmolLM2-135M, on $env_id. Run in the package's folder:
#   palaestra train configs/train.yaml
# A quick smoke test (a tiny random model, 2 steps):
#   palaestra train configs/train.yaml model.name=tiny-random run.steps=2 run.name=smoke
imports: [$module]            # registers the env without installing the package
run: {name: $module, output_dir: runs, steps: 20}
model: {name: smollm2-135m}
envs:
  train: [{id: $env_id}]
  eval: [{id: $env_id, episodes: 32, seed: 100000}]
rollout: {tasks_per_step: 4, group_size: 8, max_new_tokens: 16}
optimizer: {lr: 2.0e-5}
"""

_README = """\
# $name

A [palaestra](https://github.com/palaestra) environment, `$env_id`: reverse a word in up to two tries.
Written by `palaestra new-env $name`; edit `$module/env.py` into your own task.

In this folder (no install needed: palaestra imports `$module` from the current folder):

    palaestra envs check $module_id      # the contract palaestra trains on: what passes, what to fix
    palaestra eval --env $module_id --agent scripted:oracle --episodes 20
    pytest tests
    palaestra train configs/train.yaml

`pip install -e .` registers the env for every palaestra command (entry point `palaestra.envs`), so
`$env_id` works anywhere without the `$module:` prefix.
"""

_TEMPLATES = {
    "pyproject.toml": _PYPROJECT,
    "MODULE/__init__.py": _INIT,
    "MODULE/env.py": _ENV,
    "tests/test_env.py": _TEST,
    "configs/train.yaml": _CONFIG,
    "README.md": _README,
}
"""Relative path (MODULE: the package's module) -> `string.Template` text."""
