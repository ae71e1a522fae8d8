"""`CodeEnv`: write a program that passes hidden tests; single-turn, or multi-turn repair with feedback.

The agent replies with a complete Python program in a fenced code block. The env runs it in the
sandbox (`palaestra.sandbox`) against the task's hidden tests (`palaestra.envs.code.execution`):

    single (max_attempts=1): one program, reward = its score.
    repair (max_attempts=k>1): execution-feedback RL as in RLEF. After each program the env reports
        the score on the hidden tests and the failing tests' details (compile errors, assertion diffs
        with the actual values, exceptions, timeouts) and asks for a corrected program, until every
        test passes or the attempts run out. `feedback="public"` details only failing public tests
        (hidden tests are counted, never shown); `feedback="hidden"` details hidden ones too.

Score of a program: `reward="fraction"` (tests passed / tests) or `"all"` (1.0 iff every test passes).
Per-turn reward (`turn_reward`): "improvement" (default; the gain over the best earlier score, so an
episode's rewards sum to its best score), "score" (every turn earns its own score) or "final" (only the
last turn earns its score). A reply without a code block is a format error (reward `format_reward`,
the attempt is used, the observation explains the format).

Tasks: the bundled set (`source="bundled"`, 45 original tasks) or MBPP / HumanEval / APPS-style records
from a local file (`source="records"`, `path=...`).
"""

from __future__ import annotations

from typing import Any

from palaestra.envs.code.execution import DEFAULT_TEST_TIMEOUT_S, TestReport, run_tests
from palaestra.envs.code.parsing import CODE_FORMAT_HINT, extract_code
from palaestra.envs.code.records import STYLES, load_code_records
from palaestra.envs.code.task import DIFFICULTIES, KINDS, CodeTask, CodeTest, load_bundled
from palaestra.envs.core import CurrentTask, StepOutcome, TextEnv, draw_task
from palaestra.envs.math.task import SPLITS
from palaestra.sandbox import LazySandbox, Sandbox, SandboxConfig

__all__ = ["FEEDBACK", "REWARDS", "SOURCES", "TURN_REWARDS", "CodeEnv"]

SOURCES: tuple[str, ...] = ("bundled", "records")
REWARDS: tuple[str, ...] = ("fraction", "all")
TURN_REWARDS: tuple[str, ...] = ("improvement", "score", "final")
FEEDBACK: tuple[str, ...] = ("public", "hidden")

_SYSTEM = (
    "You are an expert Python programmer. Solve the programming task. "
    "Reply with your complete Python 3 program in one fenced code block (```python ... ```). "
    "{kind_rule} Only the standard library is available; the program has no network access."
)
_FUNCTION_RULE = "Define the requested function; do not read input or print unless asked."
_STDIO_RULE = "The program reads standard input and writes the answer to standard output."
_REPAIR_RULE = (
    " If tests fail you will see which and can submit a corrected program, up to {n} attempts in all."
)


def _show_test(test: CodeTest) -> str:
    if test.statement is not None:
        return test.statement
    return f"Input:\n{test.stdin.rstrip()}\nExpected output:\n{(test.expected_stdout or '').rstrip()}"


class CodeEnv(CurrentTask[CodeTask], LazySandbox, TextEnv):
    """A programming task per episode, judged by running hidden tests in the sandbox.

    Args:
        source: "bundled" (the project's task set) or "records" (MBPP/HumanEval/APPS-style file).
        path: records only: a .jsonl/.json/.parquet file or a save_to_disk folder.
        record_style: records only: "auto", "mbpp", "humaneval" or "apps".
        dataset_split: records only: the split of a saved DatasetDict.
        difficulty: keep only tasks of this difficulty ("easy", "medium", "hard"); None: all.
        kind: keep only "function" or "stdio" tasks; None: both.
        split: "train", "test" (hash split of the prompt) or None (every task).
        max_attempts: programs allowed per episode (1: single-turn; more: repair with feedback).
        reward: "fraction" or "all" (see the module docstring).
        turn_reward: "improvement", "score" or "final".
        feedback: "public" or "hidden": which failing tests are shown in detail.
        show_public_tests: list the public tests in the task prompt.
        format_reward: reward for a reply with no code block.
        test_timeout_s: time limit of each test.
        sandbox: a `SandboxConfig` (or its dict form) for the process-wide shared sandbox, or a
            `Sandbox` instance (not closed by the env). Default: the local backend.
        render_mode: None or "ansi".
    """

    metadata: dict[str, Any] = {**TextEnv.metadata, "blocking_step": True}  # noqa: RUF012 (gym.Env's type)

    def __init__(
        self,
        *,
        source: str = "bundled",
        path: str | None = None,
        record_style: str = "auto",
        dataset_split: str | None = None,
        difficulty: str | None = None,
        kind: str | None = None,
        split: str | None = "train",
        max_attempts: int = 1,
        reward: str = "fraction",
        turn_reward: str = "improvement",
        feedback: str = "public",
        show_public_tests: bool = True,
        format_reward: float = 0.0,
        test_timeout_s: float = DEFAULT_TEST_TIMEOUT_S,
        sandbox: SandboxConfig | dict | Sandbox | None = None,
        render_mode: str | None = None,
    ):
        checks = {
            "source": (source, SOURCES),
            "reward": (reward, REWARDS),
            "turn_reward": (turn_reward, TURN_REWARDS),
            "feedback": (feedback, FEEDBACK),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name}={value!r}; choose one of {allowed}")
        for name, choice, allowed in (("difficulty", difficulty, DIFFICULTIES), ("kind", kind, KINDS)):
            if choice is not None and choice not in allowed:
                raise ValueError(f"{name}={choice!r}; choose one of {allowed} or None (all)")
        if split is not None and split not in SPLITS:
            raise ValueError(f"split={split!r}; choose 'train', 'test' or None (every task)")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts={max_attempts!r}; it must be an integer >= 1")
        if test_timeout_s <= 0:
            raise ValueError(f"test_timeout_s={test_timeout_s}; it must be > 0")
        super().__init__(max_turns=max_attempts, render_mode=render_mode)
        if source == "records":
            if path is None:
                raise ValueError("source='records' needs path=... (an MBPP/HumanEval/APPS-style file)")
            if record_style not in STYLES:
                raise ValueError(f"record_style={record_style!r}; choose one of {STYLES}")
            tasks = load_code_records(path, style=record_style, dataset_split=dataset_split)
        else:
            if path is not None or dataset_split is not None or record_style != "auto":
                raise ValueError("path, record_style and dataset_split only apply to source='records'")
            tasks = load_bundled()
        self.tasks: list[CodeTask] = [
            t
            for t in tasks
            if (difficulty is None or t.difficulty == difficulty)
            and (kind is None or t.kind == kind)
            and (split is None or t.split == split)
        ]
        if not self.tasks:
            raise ValueError(
                f"no task matches difficulty={difficulty!r}, kind={kind!r}, split={split!r} "
                f"among {len(tasks)} tasks; loosen a filter (split=None keeps every task)"
            )
        self.reward_mode, self.turn_reward, self.feedback_mode = reward, turn_reward, feedback
        self.show_public_tests, self.format_reward = show_public_tests, float(format_reward)
        self.test_timeout_s = float(test_timeout_s)
        self._sandbox_spec = sandbox
        kind_rule = _STDIO_RULE if kind == "stdio" else _FUNCTION_RULE if kind == "function" else ""
        if kind is None:
            kind_rule = "Follow the task's input/output instructions exactly."
        self.system_prompt = _SYSTEM.format(kind_rule=kind_rule) + (
            _REPAIR_RULE.format(n=max_attempts) if max_attempts > 1 else ""
        )
        self._best = 0.0
        self.last_report: TestReport | None = None

    def _draw(self, options: dict[str, Any] | None) -> CodeTask:
        return draw_task(self.tasks, options, self.np_random, "CodeEnv")

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        task = self._task = self._draw(options)
        self._best = 0.0
        self.last_report = None
        prompt = task.prompt.strip()
        if self.show_public_tests and task.public_tests:
            examples = "\n\n".join(_show_test(t) for t in task.public_tests)
            prompt += f"\n\nExamples (your program must pass these and further hidden tests):\n{examples}"
        info = {
            "task_id": task.task_id,
            "expert_action": task.expert_action,
            "difficulty": task.difficulty,
            "attempt": 0,
            "max_attempts": self.max_turns,
        }
        return prompt, info

    def _judge_tests(self) -> list[CodeTest]:
        task = self.task
        hidden = list(task.hidden_tests)
        return hidden + [t for t in task.public_tests if t not in hidden]

    def _score(self, report: TestReport) -> float:
        if self.reward_mode == "all":
            return 1.0 if report.all_passed else 0.0
        return report.fraction

    def _turn_reward(self, score: float, final: bool) -> float:
        if self.turn_reward == "score":
            return score
        if self.turn_reward == "final":
            return score if final else 0.0
        gain = max(0.0, score - self._best)
        return gain

    def _feedback(self, report: TestReport) -> str:
        if report.compile_error is not None or report.run_error is not None:
            return report.feedback()
        if self.feedback_mode == "hidden":
            return report.feedback()
        public = set(self.task.public_tests)
        shown = [o for o in report.outcomes if not o.passed and o.test in public]
        lines = [f"{report.passed}/{report.total} tests passed."]
        for outcome in shown[:3]:
            lines.append(f"- {outcome.describe()}")
            if outcome.status != "fail" and outcome.output.strip():
                lines.append("  output: " + outcome.output.strip()[-300:])
        hidden_failed = sum(not o.passed and o.test not in public for o in report.outcomes)
        if hidden_failed:
            lines.append(f"{hidden_failed} hidden test(s) fail; their inputs are not shown.")
        return "\n".join(lines)

    def _step(self, action: str) -> StepOutcome:
        attempt = self.turn + 1
        left = self.max_turns - attempt
        info: dict[str, Any] = {
            "attempt": attempt,
            "max_attempts": self.max_turns,
            "expert_action": self.task.expert_action,
            "role": "user",
        }
        program = extract_code(action)
        if program is None:
            feedback = f"Format error: no code block found. {CODE_FORMAT_HINT}"
            if left > 0:
                feedback += f" ({left} attempt{'s' if left > 1 else ''} left.)"
            return StepOutcome(
                feedback,
                reward=self.format_reward,
                terminated=left <= 0,
                format_error="no fenced code block in the reply",
                info={**info, "tests_passed": 0, "tests_total": 0},
            )
        tests = self._judge_tests()
        report = run_tests(self.sandbox, self.task, program, tests, timeout_s=self.test_timeout_s)
        self.last_report = report
        score = self._score(report)
        solved = report.all_passed
        final = solved or left <= 0
        reward = self._turn_reward(score, final)
        self._best = max(self._best, score)
        info.update(
            tests_passed=report.passed,
            tests_total=report.total,
            score=score,
            compile_error=report.compile_error is not None,
            run_error=report.run_error,
        )
        if solved:
            return StepOutcome(
                f"All {report.total} tests passed.", reward=reward, terminated=True, success=True, info=info
            )
        feedback = self._feedback(report)
        if left > 0:
            feedback += f"\nFix the program and reply with the complete corrected version ({left} attempt{'s' if left > 1 else ''} left)."
        return StepOutcome(feedback, reward=reward, terminated=left <= 0, info=info)
