"""Judge a program against a task's tests in the sandbox, and turn the outcome into agent feedback.

`run_tests` sends the program, the tests and the harness (`palaestra.envs.code._harness`, which runs
inside the sandbox) in one sandbox execution and reads back a `TestReport`: one `TestOutcome` per test
(pass / fail / error / timeout, with the assertion diff or exception), or a compile error, or the
sandbox limit that stopped the whole run. See the harness's docstring for what a program cannot fake.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from palaestra.envs.code.task import CodeTask, CodeTest
from palaestra.sandbox import ExecutionResult, Limits, Sandbox

__all__ = ["DEFAULT_TEST_TIMEOUT_S", "TestOutcome", "TestReport", "run_tests"]

DEFAULT_TEST_TIMEOUT_S = 2.0
_REPORT_PREFIX = "@@palaestra-report@@"
_MAX_TEST_OUTPUT = 2000
_HARNESS_FILE = "_palaestra_harness.py"

TestStatus = Literal["pass", "fail", "error", "timeout"]


@dataclass(frozen=True)
class TestOutcome:
    """How one test went: `status`, a one-line `message` (why it failed) and the program's output."""

    __test__ = False  # not a pytest class

    test: CodeTest
    status: TestStatus
    message: str = ""
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def describe(self) -> str:
        """The test and its failure, for feedback (stdio inputs cut to 200 characters)."""
        if self.test.statement is not None:
            what = self.test.statement
        else:
            shown = self.test.stdin if len(self.test.stdin) <= 200 else self.test.stdin[:200] + "..."
            what = f"input {shown!r}"
        return f"{what}: {self.status} ({self.message})" if self.message else f"{what}: {self.status}"


@dataclass(frozen=True)
class TestReport:
    """The judgement of one program on a list of tests.

    Attributes:
        outcomes: one per test, in order (empty when the program did not compile or the run failed).
        total: number of tests judged.
        compile_error: the SyntaxError, if the program does not compile.
        run_error: why the whole run failed (a sandbox limit, a missing report), if it did.
    """

    __test__ = False

    outcomes: tuple[TestOutcome, ...]
    total: int
    compile_error: str | None = None
    run_error: str | None = None

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def fraction(self) -> float:
        """Fraction of the tests passed (0.0 when there were none)."""
        return self.passed / self.total if self.total else 0.0

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total

    def feedback(self, *, max_failures: int = 3, max_chars: int = 1500) -> str:
        """What an agent is told: the score and the first failing tests with their messages."""
        if self.compile_error is not None:
            return f"Your program does not compile:\n{self.compile_error}"
        if self.run_error is not None:
            return f"Running your program failed: {self.run_error}"
        head = f"{self.passed}/{self.total} tests passed."
        failures = [o for o in self.outcomes if not o.passed]
        if not failures:
            return head
        lines = [head, "Failing tests:"]
        for outcome in failures[:max_failures]:
            lines.append(f"- {outcome.describe()}")
            output = outcome.output.strip()
            if output and outcome.status != "fail":
                lines.append("  output: " + (output[-300:] if len(output) > 300 else output))
        if len(failures) > max_failures:
            lines.append(f"... and {len(failures) - max_failures} more.")
        text = "\n".join(lines)
        return text if len(text) <= max_chars else text[: max_chars - 4] + " ..."


@functools.cache
def _harness_source() -> str:
    return resources.files("palaestra.envs.code").joinpath("_harness.py").read_text(encoding="utf-8")


def run_tests(
    sandbox: Sandbox,
    task: CodeTask,
    program: str,
    tests: Sequence[CodeTest],
    *,
    timeout_s: float = DEFAULT_TEST_TIMEOUT_S,
    limits: Limits | None = None,
) -> TestReport:
    """Run `program` against `tests` of `task` in `sandbox`; one sandbox execution for all tests.

    Each test has `timeout_s`; the execution's wall-time limit is the sum plus a margin. Other limits
    (memory, processes, output) are the sandbox's, or `limits`.
    """
    base = limits or sandbox.limits
    wall = min(len(tests) * (timeout_s + 0.5) + 5.0, max(base.wall_time_s, 60.0))
    run_limits = base.model_copy(
        update={
            "wall_time_s": wall,
            "cpu_time_s": max(base.cpu_time_s, timeout_s + 1),
            "max_output_bytes": max(base.max_output_bytes, len(tests) * 3 * _MAX_TEST_OUTPUT + 65536),
        }
    )
    spec = {
        "kind": task.kind,
        "solution": program,
        "setup": task.setup_code,
        "tests": [
            {"statement": t.statement}
            if t.statement is not None
            else {"stdin": t.stdin, "expected_stdout": t.expected_stdout}
            for t in tests
        ],
        "timeout_s": timeout_s,
        "max_output": _MAX_TEST_OUTPUT,
    }
    result = sandbox.run(
        [sandbox.python, "-I", _HARNESS_FILE],
        files={_HARNESS_FILE: _harness_source()},
        stdin=json.dumps(spec),
        limits=run_limits,
    )
    return _parse_report(result, tests)


def _parse_report(result: ExecutionResult, tests: Sequence[CodeTest]) -> TestReport:
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(_REPORT_PREFIX):
            data = json.loads(line[len(_REPORT_PREFIX) :])
            break
    else:
        reason = (
            f"{result.describe()} before all tests ran"
            if result.limit or result.signal
            else f"the test harness produced no report ({result.describe()}): {result.stderr.strip()[-300:]}"
        )
        return TestReport(outcomes=(), total=len(tests), run_error=reason)
    if data.get("compile_error"):
        return TestReport(outcomes=(), total=len(tests), compile_error=data["compile_error"])
    outcomes = tuple(
        TestOutcome(
            test=test, status=item["status"], message=item.get("message", ""), output=item.get("output", "")
        )
        for test, item in zip(tests, data["tests"], strict=True)
    )
    return TestReport(outcomes=outcomes, total=len(tests))
