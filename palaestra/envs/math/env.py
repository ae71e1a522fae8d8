r"""`MathEnv`: answer a math problem; single-turn, or "try again" with feedback on wrong answers.

Problems come from a procedural generator (`palaestra.envs.math.generators`: arithmetic,
word_problem, fractions, linear_equation) or from local GSM8K/MATH-style records
(`palaestra.envs.math.records`). Replies are judged by `palaestra.envs.math.verify.is_correct`
(math-verify): the final answer goes in `\boxed{}`, and equivalent forms (`1/2`, `0.5`, `\frac{1}{2}`)
count as the same answer.

Modes:
    single: one reply; reward 1.0 if correct, else 0.0 (`format_reward` if no answer could be read).
    retry: the "try again" protocol of multi-turn RL for LLM reasoning (UFO; Liu et al. 2025): after a
        wrong or unreadable answer the env says it is incorrect (never revealing the answer) and asks
        for another attempt, up to `max_attempts`. Success at attempt j earns `reward_decay**(j-1)`; an
        unreadable answer counts as an attempt and earns `format_reward`.

Info keys besides the standard ones: `expert_action` (a correct reply ending in `\boxed{gold}`),
`attempt` (attempts used), `max_attempts`, and after a step `answer_extracted` (the answer read from
the reply, or None).
"""

from __future__ import annotations

from typing import Any

from palaestra.envs.core import CurrentTask, StepOutcome, TextEnv, draw_task
from palaestra.envs.math.generators import DIFFICULTIES, GENERATORS, generate
from palaestra.envs.math.records import STYLES, load_records
from palaestra.envs.math.task import SPLITS, MathTask
from palaestra.envs.math.verify import FORMAT_HINT, is_correct

__all__ = ["MODES", "SOURCES", "MathEnv"]

SOURCES: tuple[str, ...] = (*GENERATORS, "records")
MODES: tuple[str, ...] = ("single", "retry")
DEFAULT_RETRY_ATTEMPTS = 3

_PROMPT = (
    "Solve the math problem. Reason step by step if it helps, then give your final answer in "
    "\\boxed{}, e.g. \\boxed{42}. Put only the final answer (a number, fraction or expression) in the box."
)
_RETRY_PROMPT = " If your answer is wrong you will be told so and can try again, up to {n} attempts in all."


class MathEnv(CurrentTask[MathTask], TextEnv):
    r"""A math problem per episode, judged by math-verify.

    Args:
        source: a generator name ("arithmetic", "word_problem", "fractions", "linear_equation") or
            "records" (problems from the file at `path`).
        difficulty: "easy", "medium" or "hard" (generators only).
        split: "train" or "test": only problems whose question hash falls in that split (10% test;
            see `palaestra.envs.math.task`); None: every problem.
        mode: "single" or "retry".
        max_attempts: replies allowed in retry mode (default 3); single mode allows exactly 1.
        reward_decay: retry mode: success at attempt j earns reward_decay**(j-1); in (0, 1].
        format_reward: reward for a reply with no readable answer.
        path: records only: a .jsonl/.json/.parquet file or a `save_to_disk` folder.
        record_style: records only: "auto", "gsm8k" or "math".
        question_field: records only: the question's field (auto-detected by default).
        answer_field: records only: the answer's field (auto-detected by default).
        solution_field: records only: the worked solution's field (auto-detected by default).
        dataset_split: records only: the split of a saved `DatasetDict`.
        render_mode: None or "ansi".

    Raises:
        ValueError: an option out of range, records options without source="records", or a records
            source without records in `split`.
        TypeError: an unknown keyword argument.
    """

    def __init__(
        self,
        *,
        source: str = "arithmetic",
        difficulty: str = "medium",
        split: str | None = "train",
        mode: str = "single",
        max_attempts: int | None = None,
        reward_decay: float = 0.5,
        format_reward: float = 0.0,
        path: str | None = None,
        record_style: str = "auto",
        question_field: str | None = None,
        answer_field: str | None = None,
        solution_field: str | None = None,
        dataset_split: str | None = None,
        render_mode: str | None = None,
    ):
        if source not in SOURCES:
            raise ValueError(f"source={source!r}; choose one of {SOURCES}")
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty={difficulty!r}; choose one of {DIFFICULTIES}")
        if split is not None and split not in SPLITS:
            raise ValueError(f"split={split!r}; choose 'train', 'test' or None (every problem)")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; choose one of {MODES}")
        if mode == "single" and max_attempts not in (None, 1):
            raise ValueError(f"max_attempts={max_attempts} needs mode='retry'; single mode allows 1 reply")
        attempts = (
            max_attempts if max_attempts is not None else (DEFAULT_RETRY_ATTEMPTS if mode == "retry" else 1)
        )
        if not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"max_attempts={max_attempts!r}; it must be an integer >= 1")
        if not 0.0 < reward_decay <= 1.0:
            raise ValueError(f"reward_decay={reward_decay}; it must lie in (0, 1]")
        super().__init__(max_turns=attempts, render_mode=render_mode)
        self.source, self.difficulty, self.split, self.mode = source, difficulty, split, mode
        self.reward_decay, self.format_reward = float(reward_decay), float(format_reward)
        self.system_prompt = _PROMPT + (_RETRY_PROMPT.format(n=attempts) if mode == "retry" else "")
        self.records: list[MathTask] = []
        record_options = {
            "path": path,
            "question_field": question_field,
            "answer_field": answer_field,
            "solution_field": solution_field,
            "dataset_split": dataset_split,
        }
        if source == "records":
            if path is None:
                raise ValueError(
                    "source='records' needs path=... (a .jsonl/.json/.parquet file or a save_to_disk folder)"
                )
            if record_style not in STYLES:
                raise ValueError(f"record_style={record_style!r}; choose one of {STYLES}")
            tasks = load_records(
                path, style=record_style, **{k: v for k, v in record_options.items() if k != "path"}
            )
            self.records = [t for t in tasks if split is None or t.split == split]
            if not self.records:
                raise ValueError(
                    f"{path}: none of its {len(tasks)} records falls in split={split!r}; try split=None"
                )
        else:
            given = [k for k, v in record_options.items() if v is not None]
            if given or record_style != "auto":
                raise ValueError(f"{', '.join(given or ['record_style'])} only apply to source='records'")

    def _draw(self, options: dict[str, Any] | None) -> MathTask:
        if self.source == "records":
            return draw_task(self.records, options, self.np_random, "MathEnv")
        options = dict(options or {})
        index = options.pop("task_index", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; MathEnv accepts 'task_index'")
        if index is not None:
            raise ValueError("options['task_index'] needs source='records'; generators are seeded")
        return generate(self.source, self.np_random, difficulty=self.difficulty, split=self.split)

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        self._task = self._draw(options)
        info = {
            "task_id": self._task.task_id,
            "expert_action": self._task.expert_action,
            "attempt": 0,
            "max_attempts": self.max_turns,
        }
        return self._task.question, info

    def _step(self, action: str) -> StepOutcome:
        task = self.task
        attempt = self.turn + 1  # TextEnv counts every reply (non-text ones too) as a turn
        left = self.max_turns - attempt
        judgement = is_correct(action, task.answer)
        info = {
            "answer_extracted": judgement.extracted,
            "attempt": attempt,
            "max_attempts": self.max_turns,
            "expert_action": task.expert_action,
            "role": "user",
        }
        if judgement.correct:
            reward = self.reward_decay ** (attempt - 1)
            return StepOutcome("Correct.", reward=reward, terminated=True, success=True, info=info)
        if judgement.format_error is not None:
            reward, feedback = self.format_reward, f"Format error: {judgement.format_error}"
        else:
            reward, feedback = 0.0, f"Your answer {judgement.extracted} is incorrect."
        if left > 0:
            plural = "s" if left > 1 else ""
            feedback += f" Try again ({left} attempt{plural} left)."
            if judgement.format_error is None:
                feedback += f" {FORMAT_HINT}"
        elif self.mode == "retry":
            feedback += " No attempts left."
        return StepOutcome(
            feedback, reward=reward, terminated=left <= 0, format_error=judgement.format_error, info=info
        )
