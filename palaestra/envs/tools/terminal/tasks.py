"""The terminal tasks: setup files, a prompt, a hidden test script and an expert command sequence.

The bundled tasks live in `data/{easy,medium,hard}.yaml`, one list of tasks per difficulty:

    - id: files-archive-logs          unique, stable (the episode's task_id)
      category: files                 files | text | python | build | data
      prompt: Move every .log file ...
      files: {incoming/a.log: "..."}  the work dir at the start (relative paths)
      test: |                         bash, run in /work after the episode; exit 0 = solved
        test -f archive/logs/a.log
      expert:                         tool calls that solve it, one per turn
        - run: mkdir -p archive/logs && mv incoming/*.log archive/logs/
        - write_file: {path: notes.txt, content: "..."}

Only what the sandbox images hold may be used (bash, coreutils, grep, sed, mawk, find, tar, gzip,
diff, python3 with its standard library; no network, no compilers, no make): see
containers/sandbox.Dockerfile.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from palaestra.sandbox.api import validate_files

__all__ = ["DIFFICULTIES", "Difficulty", "ExpertStep", "TerminalTask", "bundled_tasks", "load_tasks"]

Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")
DATA_DIR = Path(__file__).parent / "data"


class WriteFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str
    content: str


class ExpertStep(BaseModel):
    """One expert turn: a shell command (`run`) or a file to write (`write_file`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    run: str | None = None
    write_file: WriteFile | None = None

    @model_validator(mode="after")
    def _one_action(self) -> ExpertStep:
        if (self.run is None) == (self.write_file is None):
            raise ValueError("an expert step is either `run: COMMAND` or `write_file: {path, content}`")
        return self

    @property
    def tool(self) -> tuple[str, dict[str, str]]:
        """The step as (tool name, arguments)."""
        if self.run is not None:
            return "run", {"command": self.run}
        assert self.write_file is not None
        return "write_file", self.write_file.model_dump()


class TerminalTask(BaseModel):
    """One terminal task (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    difficulty: Difficulty
    category: Literal["files", "text", "python", "build", "data"]
    prompt: str = Field(min_length=1)
    files: dict[str, str] = Field(default_factory=dict)
    test: str = Field(min_length=1)
    expert: list[ExpertStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _files_are_relative(self) -> TerminalTask:
        validate_files(self.files)
        return self


def load_tasks(path: str | Path, difficulty: Difficulty | None = None) -> list[TerminalTask]:
    """The tasks of a YAML file (a list of task mappings); `difficulty` fills a task's missing one."""
    records = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a list of tasks, got {type(records).__name__}")
    tasks = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"{path}: task {i} is a {type(record).__name__}, not a mapping")
        if difficulty is not None:
            record = {"difficulty": difficulty, **record}
        try:
            tasks.append(TerminalTask.model_validate(record))
        except ValueError as exc:
            raise ValueError(f"{path}: task {i} ({record.get('id', '?')}): {exc}") from exc
    return tasks


@functools.cache
def bundled_tasks() -> tuple[TerminalTask, ...]:
    """Every bundled task, easy first; ids are unique."""
    tasks = [t for level in DIFFICULTIES for t in load_tasks(DATA_DIR / f"{level}.yaml", level)]
    ids = [t.id for t in tasks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate terminal task ids: {duplicates}")
    return tuple(tasks)
