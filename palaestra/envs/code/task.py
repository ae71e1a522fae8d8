"""The code task record, its tests, and the bundled task set.

A code task asks the agent for a complete Python program. There are two kinds:
    function: the program defines `entry_point`. Each test is one Python statement, normally
        `assert entry_point(1, 2) == 3`, run in the program's namespace after the program and then
        `setup_code` have run.
    stdio: the program reads standard input and writes standard output. Each test is an input and
        the expected output; outputs are compared with `outputs_match` (trailing whitespace ignored).

A program solves a task when it passes every hidden test. Public tests are examples that an
environment may show or run for feedback. The loaders and the bundled set also include them among
the hidden tests.

Train/test split: the hash split of the prompt, as for math (`palaestra.envs.math.task.split_of`).

Bundled tasks (`data/tasks.jsonl`, original to this project) hold one `CodeTask.to_dict()` per line.
Function tests are statement strings; stdio tests are `{"stdin": ..., "expected_stdout": ...}` objects.
"""

from __future__ import annotations

import ast
import functools
import json
import keyword
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any, Literal

from palaestra.envs.math.task import Split, split_of

__all__ = [
    "DIFFICULTIES",
    "KINDS",
    "CodeTask",
    "CodeTest",
    "Difficulty",
    "TaskKind",
    "load_bundled",
    "outputs_match",
]

TaskKind = Literal["function", "stdio"]
Difficulty = Literal["easy", "medium", "hard"]
KINDS: tuple[str, ...] = ("function", "stdio")
DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")
_BUNDLED_FILE = "tasks.jsonl"


def _short(text: str, limit: int = 80) -> str:
    """`text` as a repr, cut to about `limit` characters for error messages."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _check_python(source: str, what: str) -> ast.Module:
    """Parse `source`; raise ValueError naming `what` when it is not valid Python 3."""
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"{what} is not valid Python ({exc.msg}, line {exc.lineno})") from None


def outputs_match(actual: str, expected: str) -> bool:
    """Whether a stdio program's output matches the expected output.

    The two texts are compared line by line after normalising line endings to "\\n" and removing
    trailing whitespace from each line and trailing blank lines. Leading whitespace still counts.
    """

    def normalise(text: str) -> list[str]:
        lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    return normalise(actual) == normalise(expected)


@dataclass(frozen=True)
class CodeTest:
    """One test: a statement (function tasks) or an input with its expected output (stdio tasks).

    Attributes:
        statement: for a function test, one Python statement (normally an `assert`) run after the
            program and the task's `setup_code`; None for a stdio test.
        stdin: for a stdio test, the program's standard input; "" for a function test.
        expected_stdout: for a stdio test, the expected standard output (see `outputs_match`);
            None for a function test.
    """

    statement: str | None = None
    stdin: str = ""
    expected_stdout: str | None = None

    def __post_init__(self) -> None:
        for name in ("statement", "expected_stdout"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"CodeTest.{name} must be a string or None, got {type(value).__name__}")
        if not isinstance(self.stdin, str):
            raise ValueError(f"CodeTest.stdin must be a string, got {type(self.stdin).__name__}")
        if (self.statement is None) == (self.expected_stdout is None):
            raise ValueError(
                "a CodeTest needs exactly one of statement= (function test) or expected_stdout= "
                f"(stdio test); got statement={self.statement!r}, expected_stdout={self.expected_stdout!r}"
            )
        if self.statement is not None:
            if self.stdin:
                raise ValueError(
                    f"function test {_short(self.statement)} has stdin; only stdio tests read stdin"
                )
            module = _check_python(self.statement, f"test statement {_short(self.statement)}")
            if len(module.body) != 1:
                raise ValueError(
                    f"test statement {_short(self.statement)} holds {len(module.body)} statements; "
                    "a function test is exactly one statement"
                )

    @property
    def kind(self) -> TaskKind:
        """The kind of task this test belongs to: "function" or "stdio"."""
        return "function" if self.statement is not None else "stdio"

    def to_json(self) -> str | dict[str, str]:
        """The bundled-file form: the statement string, or `{"stdin": ..., "expected_stdout": ...}`."""
        if self.statement is not None:
            return self.statement
        assert self.expected_stdout is not None  # __post_init__ guarantees one of the two
        return {"stdin": self.stdin, "expected_stdout": self.expected_stdout}

    @classmethod
    def from_json(cls, value: object) -> CodeTest:
        """Inverse of `to_json`.

        Raises:
            ValueError: `value` is neither a statement string nor a stdin/expected_stdout object.
        """
        if isinstance(value, str):
            return cls(statement=value)
        if isinstance(value, Mapping) and set(value) <= {"stdin", "expected_stdout"}:
            if "expected_stdout" not in value:
                raise ValueError(f"stdio test {dict(value)!r} has no expected_stdout")
            return cls(stdin=value.get("stdin", ""), expected_stdout=value["expected_stdout"])
        raise ValueError(
            f"a test is a statement string or an object with stdin and expected_stdout; got {value!r}"
        )


@dataclass(frozen=True)
class CodeTask:
    """One programming problem with its tests and a reference solution.

    Attributes:
        task_id: a stable id: the file's id for bundled tasks ("pal-code-001"), or
            f"{source}-{hash:016x}" of the prompt for loaded records (see `palaestra.envs.code.records`).
        prompt: the problem statement shown to the agent. A function task names the function and its
            signature; a stdio task describes the exact input and output formats.
        kind: "function" (tests call `entry_point`) or "stdio" (tests feed stdin and read stdout).
        entry_point: the function the tests call (kind "function"); None for stdio tasks.
        public_tests: example tests an environment may show or run for feedback.
        hidden_tests: the tests that judge a program. They normally repeat the public ones.
        reference_solution: a complete Python program that passes every test.
        difficulty: "easy", "medium" or "hard".
        source: where the task comes from: "bundled", "mbpp", "humaneval" or "apps".
        setup_code: Python run after the program and before the tests in the same namespace (test
            imports, helpers, MBPP's test_setup_code).
    """

    task_id: str
    prompt: str
    kind: TaskKind
    entry_point: str | None
    public_tests: tuple[CodeTest, ...]
    hidden_tests: tuple[CodeTest, ...]
    reference_solution: str
    difficulty: Difficulty
    source: str
    setup_code: str = ""

    def __post_init__(self) -> None:
        for name in ("task_id", "prompt", "reference_solution", "source", "setup_code"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(
                    f"CodeTask.{name} must be a string, got {type(getattr(self, name)).__name__}"
                )
        where = f"task {self.task_id!r}"
        if not self.task_id.strip() or not self.prompt.strip():
            raise ValueError(f"{where}: task_id and prompt must be non-empty")
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind={self.kind!r}; choose one of {KINDS}")
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"{where}: difficulty={self.difficulty!r}; choose one of {DIFFICULTIES}")
        if self.kind == "function":
            entry = self.entry_point
            if not isinstance(entry, str) or not entry.isidentifier() or keyword.iskeyword(entry):
                raise ValueError(f"{where}: a function task needs entry_point=<function name>, got {entry!r}")
        elif self.entry_point is not None:
            raise ValueError(f"{where}: a stdio task has entry_point=None, got {self.entry_point!r}")
        for name in ("public_tests", "hidden_tests"):
            tests = tuple(getattr(self, name))
            object.__setattr__(self, name, tests)  # accept any sequence; store a tuple
            for index, test in enumerate(tests):
                if not isinstance(test, CodeTest) or test.kind != self.kind:
                    raise ValueError(f"{where}: {name}[{index}] is {test!r}, expected a {self.kind} CodeTest")
        if not self.hidden_tests:
            raise ValueError(f"{where}: hidden_tests is empty; a task needs at least one test to judge by")
        _check_python(self.reference_solution, f"{where}: reference_solution")
        _check_python(self.setup_code, f"{where}: setup_code")

    @property
    def split(self) -> Split:
        """The hash split ("train" or "test") of this task's prompt."""
        return split_of(self.prompt)

    @property
    def expert_action(self) -> str:
        """A correct reply: the reference solution in a fenced python block."""
        return f"Here is my solution.\n\n```python\n{self.reference_solution.strip()}\n```"

    def to_dict(self) -> dict[str, Any]:
        """The task as a JSON-ready dict (the bundled file's line format)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("public_tests", "hidden_tests"):
            data[name] = [test.to_json() for test in data[name]]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodeTask:
        """Inverse of `to_dict`.

        Raises:
            ValueError: missing or unknown fields, or a field with an invalid value (the message names it).
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        missing = sorted(names - {"setup_code"} - set(data))
        if unknown or missing:
            raise ValueError(f"task fields: missing {missing}, unknown {unknown}; expected {sorted(names)}")
        values = dict(data)
        for name in ("public_tests", "hidden_tests"):
            if not isinstance(values[name], list | tuple):
                raise ValueError(f"field {name!r} must be a list of tests, got {type(values[name]).__name__}")
            try:
                values[name] = tuple(CodeTest.from_json(test) for test in values[name])
            except ValueError as exc:
                raise ValueError(f"field {name!r}: {exc}") from None
        return cls(**values)


@functools.lru_cache(maxsize=1)
def _bundled() -> tuple[CodeTask, ...]:
    resource = resources.files("palaestra.envs.code").joinpath("data").joinpath(_BUNDLED_FILE)
    tasks: list[CodeTask] = []
    for number, line in enumerate(resource.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            tasks.append(CodeTask.from_dict(json.loads(line)))
        except (json.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{resource}, line {number}: {exc}") from None
    ids = [task.task_id for task in tasks]
    duplicates = sorted({task_id for task_id in ids if ids.count(task_id) > 1})
    if duplicates:
        raise ValueError(f"{resource}: duplicate task ids {duplicates}")
    return tuple(tasks)


def load_bundled(difficulty: str | None = None) -> list[CodeTask]:
    """The bundled, original code tasks (function and stdio), in file order.

    Args:
        difficulty: keep only "easy", "medium" or "hard" tasks; None keeps all.

    Raises:
        ValueError: an unknown difficulty, or a malformed bundled file (names the line).
    """
    if difficulty is not None and difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty={difficulty!r}; choose one of {DIFFICULTIES} or None")
    return [task for task in _bundled() if difficulty is None or task.difficulty == difficulty]
