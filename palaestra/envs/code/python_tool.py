r"""`PythonToolMathEnv`: a math problem the agent may solve with a Python tool, then answer.

Protocol (stated in the system prompt):
    - To run code, the reply contains `<python>` ... `</python>` (a fenced ```python block also works).
      The env runs it in the sandbox and answers with a `tool` message: `<output>` stdout (and the
      error, if any) `</output>`. Nothing persists between calls: each call is a fresh program.
    - To answer, the reply contains the final answer in `\boxed{}`; it is judged by math-verify as in
      `MathEnv`. A reply with a boxed answer is always judged, even if it also holds code.
    - A reply with neither is a format error (the attempt counts, the observation explains).
Up to `max_tool_calls` calls; after the last one the env asks for the final answer. The episode ends
at the first boxed answer. Reward: 1.0 for a correct answer, else 0.0 (`format_reward` for format
errors), minus `tool_call_cost` per call made (default 0: tools are free).
"""

from __future__ import annotations

from typing import Any

from palaestra.envs.code.parsing import TOOL_FORMAT_HINT, extract_tool_call
from palaestra.envs.core import CurrentTask, StepOutcome, TextEnv
from palaestra.envs.math.generators import DIFFICULTIES, GENERATORS, generate
from palaestra.envs.math.task import SPLITS, MathTask
from palaestra.envs.math.verify import FORMAT_HINT, is_correct, last_boxed
from palaestra.sandbox import LazySandbox, Limits, Sandbox, SandboxConfig

__all__ = ["PythonToolMathEnv"]

_SYSTEM = (
    "Solve the math problem. You may use a Python tool up to {n} times: write code between <python> and "
    "</python> and you will get its printed output back (use print; each call is a fresh program). "
    "When you are done, give the final answer in \\boxed{{}}, e.g. \\boxed{{42}}."
)
_TOOL_LIMITS = Limits(wall_time_s=5.0, cpu_time_s=5.0, memory_mb=256, max_output_bytes=4096)


class PythonToolMathEnv(CurrentTask[MathTask], LazySandbox, TextEnv):
    """A math problem with a sandboxed Python tool.

    Args:
        source: a math generator ("arithmetic", "word_problem", "fractions", "linear_equation").
        difficulty: "easy", "medium" or "hard".
        split: "train", "test" or None.
        max_tool_calls: tool calls allowed before the final answer.
        tool_call_cost: subtracted from the reward per tool call.
        format_reward: reward for a reply with neither a tool call nor an answer (episode goes on).
        sandbox: `SandboxConfig`, its dict form, or a `Sandbox` (default: the shared local sandbox).
        tool_limits: limits of one tool call.
        render_mode: None or "ansi".
    """

    metadata: dict[str, Any] = {**TextEnv.metadata, "blocking_step": True}  # noqa: RUF012 (gym.Env's type)

    def __init__(
        self,
        *,
        source: str = "arithmetic",
        difficulty: str = "hard",
        split: str | None = "train",
        max_tool_calls: int = 3,
        tool_call_cost: float = 0.0,
        format_reward: float = 0.0,
        sandbox: SandboxConfig | dict | Sandbox | None = None,
        tool_limits: Limits | dict | None = None,
        render_mode: str | None = None,
    ):
        if source not in GENERATORS:
            raise ValueError(f"source={source!r}; choose one of {tuple(GENERATORS)}")
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty={difficulty!r}; choose one of {DIFFICULTIES}")
        if split is not None and split not in SPLITS:
            raise ValueError(f"split={split!r}; choose 'train', 'test' or None")
        if isinstance(max_tool_calls, bool) or not isinstance(max_tool_calls, int) or max_tool_calls < 0:
            raise ValueError(f"max_tool_calls={max_tool_calls!r}; it must be an integer >= 0")
        super().__init__(max_turns=max_tool_calls + 1, render_mode=render_mode)
        self.source, self.difficulty, self.split = source, difficulty, split
        self.max_tool_calls, self.tool_call_cost = max_tool_calls, float(tool_call_cost)
        self.format_reward = float(format_reward)
        self.tool_limits = Limits.model_validate(tool_limits) if tool_limits is not None else _TOOL_LIMITS
        self._sandbox_spec = sandbox
        self.system_prompt = _SYSTEM.format(n=max_tool_calls)
        self._calls = 0

    def _expert_action(self) -> str:
        """Before any tool call: compute the answer with the tool; after one: answer."""
        task = self.task
        if self._calls == 0 and self.max_tool_calls > 0:
            return f"Let me check with Python.\n<python>\nprint({task.answer!r})\n</python>"
        return f"The final answer is \\boxed{{{task.answer}}}."

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; PythonToolMathEnv takes none")
        self._task = generate(self.source, self.np_random, difficulty=self.difficulty, split=self.split)
        self._calls = 0
        info = {"task_id": self._task.task_id, "expert_action": self._expert_action(), "tool_calls": 0}
        return self._task.question, info

    def _step(self, action: str) -> StepOutcome:
        task = self.task
        info: dict[str, Any] = {}
        if last_boxed(action) is not None:
            judgement = is_correct(action, task.answer)
            reward = (1.0 if judgement.correct else 0.0) - self.tool_call_cost * self._calls
            observation = (
                "Correct." if judgement.correct else f"Your answer {judgement.extracted} is incorrect."
            )
            if judgement.format_error is not None:
                observation = f"Format error: {judgement.format_error}"
            info.update(answer_extracted=judgement.extracted, tool_calls=self._calls, role="user")
            return StepOutcome(
                observation,
                reward=reward,
                terminated=True,
                success=judgement.correct,
                format_error=judgement.format_error,
                info=info,
            )
        code = extract_tool_call(action)
        last_turn = self.turn + 1 >= self.max_turns
        if code is None or self._calls >= self.max_tool_calls:
            if code is None:
                error = "no tool call and no final answer in the reply"
                text = f"Format error: {TOOL_FORMAT_HINT} Or give the final answer: {FORMAT_HINT}"
            else:
                error = "tool call after the last allowed one"
                text = f"No tool calls left. {FORMAT_HINT}"
            info.update(tool_calls=self._calls, role="user", expert_action=self._expert_action())
            return StepOutcome(text, reward=self.format_reward, format_error=error, info=info)
        self._calls += 1
        result = self.sandbox.run_python(code, limits=self.tool_limits)
        output = result.stdout
        if result.exit_code != 0 or result.limit is not None:
            tail = result.stderr.strip().splitlines()[-3:] if result.stderr.strip() else []
            output += ("\n".join(tail) + "\n") if tail else ""
            output += f"[{result.describe()}]\n"
        observation = f"<output>\n{output.rstrip()}\n</output>"
        calls_left = self.max_tool_calls - self._calls
        if calls_left == 0 or last_turn:
            observation += f"\nNo tool calls left. {FORMAT_HINT}"
        info.update(tool_calls=self._calls, role="tool", expert_action=self._expert_action())
        return StepOutcome(observation, reward=0.0, info=info)
