"""MCP tasks: what the agent is asked, which server it works with, how the episode is judged, and an
expert's solution. Tasks are read from a task file (JSONL: one task per line; YAML or JSON: a list of
tasks, or a mapping with a `tasks` list):

    id: kv-copy                                  # unique in the file
    prompt: Copy the value of 'src' to 'dst', then answer with the value.
    server:                                      # stdio: a command palaestra starts, one per episode
      command: python                            #   "python" is the interpreter running palaestra
      args: [servers/kv_store.py, --seed, "src=7"]
      env: {}                                    #   extra environment variables
      cwd: null                                  #   default: the task file's folder
    # server: {url: "http://127.0.0.1:8000/mcp", headers: {}}    streamable HTTP: a running server
    check:                                       # every given part must pass
      answer: "7"                                #   the final answer equals this (stripped), or
      number: 7                                  #   parses as a number within `tolerance` of this
      tolerance: 1.0e-6
      state:                                     #   after the episode, in the same session:
        - {tool: get, arguments: {key: dst}, result: "7"}     # get(dst) returns "7"
    expert:
      calls:                                     # one reply per item; a list = several calls in one reply
        - {name: get, arguments: {key: src}}
        - {name: set, arguments: {key: dst, value: "7"}}
      answer: "7"
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "BUNDLED_TASKS",
    "Check",
    "Expert",
    "ExpertCall",
    "HttpServer",
    "MCPTask",
    "StateCheck",
    "StdioServer",
    "load_tasks",
]

BUNDLED_TASKS = Path(__file__).parent / "tasks.jsonl"
"""The bundled tasks (over the bundled calculator and key-value store servers)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StdioServer(_Strict):
    """A server palaestra starts for each episode and talks to over stdin/stdout."""

    command: str = Field(description='The executable; "python" means the interpreter running palaestra.')
    args: list[str] = Field(default_factory=list, description="Its arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    cwd: str | None = Field(default=None, description="Working directory (default: the task file's folder).")


class HttpServer(_Strict):
    """A running server reached over streamable HTTP (each episode opens a session of its own)."""

    url: str = Field(description='The MCP endpoint, e.g. "http://127.0.0.1:8000/mcp".')
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers (e.g. auth).")


class StateCheck(_Strict):
    """A tool call made after the episode, in the episode's session, and the result it must return."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: str = Field(description="The expected text of the result (both sides stripped).")


class Check(_Strict):
    """How an episode is judged; every part given must pass."""

    answer: str | None = Field(default=None, description="The final answer equals this (stripped).")
    number: float | None = Field(default=None, description="The final answer is a number this close.")
    tolerance: float = Field(default=1e-6, ge=0, description="Absolute tolerance of `number`.")
    state: list[StateCheck] = Field(default_factory=list, description="Calls judging the server's state.")

    @model_validator(mode="after")
    def _something_to_check(self) -> Check:
        if self.answer is None and self.number is None and not self.state:
            raise ValueError("a check needs at least one of answer, number or state")
        return self

    def judge_answer(self, answer: str) -> str | None:
        """Why `answer` fails the answer/number parts, or None if it passes them."""
        text = answer.strip()
        if self.answer is not None and text != self.answer.strip():
            return f"the answer {_short(text)} is not {self.answer.strip()!r}"
        if self.number is not None:
            try:
                value = float(text.replace(",", ""))
            except ValueError:
                return f"the answer {_short(text)} is not a number"
            if not math.isclose(value, self.number, rel_tol=0.0, abs_tol=self.tolerance):
                return f"the answer {text} is not {self.number:g}"
        return None


class ExpertCall(_Strict):
    """One tool call of the expert."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Expert(_Strict):
    """A solution: its replies' tool calls, then the final answer."""

    calls: list[ExpertCall | list[ExpertCall]] = Field(
        default_factory=list, description="One reply per item; a list is several calls in one reply."
    )
    answer: str

    @property
    def turns(self) -> list[list[ExpertCall]]:
        """The calls of each reply."""
        return [item if isinstance(item, list) else [item] for item in self.calls]


class MCPTask(_Strict):
    """One task (see the module docstring for the file format)."""

    id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    server: StdioServer | HttpServer
    check: Check
    expert: Expert

    @model_validator(mode="after")
    def _expert_passes_the_answer_check(self) -> MCPTask:
        if (why := self.check.judge_answer(self.expert.answer)) is not None:
            raise ValueError(f"the expert's answer fails the check: {why}")
        return self


def load_tasks(path: str | Path) -> list[MCPTask]:
    """Read a task file (.jsonl, .json, .yaml or .yml); a stdio server's `cwd` is made absolute,
    relative to the file's folder.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be read as tasks (one line: the task and the field at fault).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MCP task file {path} does not exist")
    rows = _rows(path)
    if not rows:
        raise ValueError(f"{path}: no tasks")
    tasks: list[MCPTask] = []
    for where, row in rows:
        try:
            task = MCPTask.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            at = ".".join(str(p) for p in first["loc"])
            raise ValueError(
                f"{path} {where}: {at + ': ' if at else ''}{first['msg']}"
                + (f" ({exc.error_count()} errors)" if exc.error_count() > 1 else "")
            ) from None
        tasks.append(_resolve(task, path.parent))
    ids = [task.id for task in tasks]
    if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
        raise ValueError(f"{path}: task ids must be unique; repeated: {', '.join(duplicates)}")
    return tasks


def _rows(path: Path) -> list[tuple[str, Any]]:
    """(where, raw task) for every task of the file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path} line {number}: invalid JSON ({exc.msg})") from None
        return rows
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot parse: {' '.join(str(exc).split())}") from None
    if isinstance(data, dict) and set(data) == {"tasks"}:
        data = data["tasks"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of tasks (or a mapping with a 'tasks' list)")
    return [(f"task {index}", row) for index, row in enumerate(data)]


def _resolve(task: MCPTask, folder: Path) -> MCPTask:
    server = task.server
    if not isinstance(server, StdioServer):
        return task
    cwd = folder / server.cwd if server.cwd is not None else folder
    return task.model_copy(update={"server": server.model_copy(update={"cwd": str(cwd.resolve())})})


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
