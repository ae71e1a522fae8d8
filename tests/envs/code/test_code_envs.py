"""Code envs through their public API: oracle runs, repair feedback, rewards, format errors, the tool."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

import palaestra
from palaestra.agents.scripted import OraclePolicy
from palaestra.envs.code.task import load_bundled
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (apt-get install bubblewrap)"
)

CODE_IDS = [
    "palaestra/Code-Bundled-v0",
    "palaestra/Code-Bundled-v0-easy",
    "palaestra/Code-Repair-v0",
    "palaestra/Code-MBPP-v0",
    "palaestra/Code-HumanEval-v0",
    "palaestra/Code-APPS-v0",
    "palaestra/Code-PythonMath-v0",
]


def _env(env_id="palaestra/Code-Repair-v0", **kwargs):
    return palaestra.make(env_id, **kwargs).unwrapped


def _wrong_program(env) -> str:
    task = env.task
    if task.kind == "function":
        return f"```python\ndef {task.entry_point}(*args, **kwargs):\n    return None\n```"
    return "```python\nprint('nothing useful')\n```"


def test_code_envs_are_listed():
    listed = {card.id for card in palaestra.list_envs("Code")}
    assert set(CODE_IDS) <= listed


def test_oracle_solves_every_bundled_task_through_the_rollout_runner():
    count = len(load_bundled())
    tasks = [
        Task("palaestra/Code-Bundled-v0", seed=i, env_kwargs={"split": None}, options={"task_index": i})
        for i in range(count)
    ]
    runner = RolloutRunner(OraclePolicy(), RolloutConfig(max_concurrency=8))
    try:
        trajectories = asyncio.run(runner.run(tasks))
    finally:
        runner.close()
    assert len({t.task_id for t in trajectories}) == count
    failed = [(t.task_id, t.error, t.messages[-1].content[:200]) for t in trajectories if not t.success]
    assert not failed
    assert all(sum(turn.reward for turn in t.turns) == 1.0 for t in trajectories)


def test_repair_feedback_shows_failing_public_tests_and_counts_hidden_ones():
    env = _env(split=None)
    prompt, info = env.reset(seed=0, options={"task_index": 0})
    public = env.task.public_tests
    assert public[0].statement in prompt  # examples are shown
    observation, reward, terminated, truncated, info = env.step(_wrong_program(env))
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["tests_passed"] == 0 and info["tests_total"] == len(env.task.hidden_tests)
    assert public[0].statement in observation and "got None" in observation
    hidden_only = [t for t in env.task.hidden_tests if t not in public]
    assert all(t.statement not in observation for t in hidden_only), "public feedback leaked a hidden test"
    assert "hidden test(s) fail" in observation and "2 attempts left" in observation
    observation, reward, terminated, truncated, info = env.step(info["expert_action"])
    assert terminated and info["success"] and reward == 1.0
    assert observation.startswith("All ")


def test_hidden_feedback_mode_details_hidden_tests():
    env = _env(split=None, feedback="hidden")
    env.reset(seed=0, options={"task_index": 0})
    observation, *_ = env.step(_wrong_program(env))
    assert "Failing tests:" in observation


def test_improvement_rewards_sum_to_the_best_score():
    env = _env(split=None, max_attempts=3)
    env.reset(seed=0, options={"task_index": 0})
    name = env.task.entry_point
    # passes the empty-list style edge cases only by luck: returns its first argument unchanged
    partial = f"```python\ndef {name}(*args):\n    return args[0] if args else None\n```"
    rewards = [env.step(partial)[1]]
    rewards.append(env.step(partial)[1])  # no gain, no reward
    _, last, terminated, _, info = env.step(env.task.expert_action)
    rewards.append(last)
    assert terminated and info["success"]
    assert rewards[1] == 0.0
    assert sum(rewards) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("reward", "turn_reward"), [("all", "improvement"), ("fraction", "final"), ("fraction", "score")]
)
def test_reward_options(reward, turn_reward):
    env = _env(split=None, reward=reward, turn_reward=turn_reward, max_attempts=2)
    env.reset(seed=0, options={"task_index": 0})
    _, first, *_ = env.step(_wrong_program(env))
    _, second, terminated, _, info = env.step(env.task.expert_action)
    assert first == 0.0 and second == 1.0 and terminated and info["score"] == 1.0


def test_reply_without_code_is_a_format_error_not_an_exception():
    env = _env(split=None)
    env.reset(seed=1)
    observation, reward, terminated, _, info = env.step("I would use a loop here.")
    assert info["format_error"] and "code block" in observation
    assert reward == 0.0 and not terminated


def test_programs_that_crash_or_hang_get_feedback():
    env = _env(split=None, test_timeout_s=0.5, kind="function")
    env.reset(seed=0, options={"task_index": 0})
    observation, *_ = env.step("```python\ndef broken(:\n```")
    assert "does not compile" in observation
    name = env.task.entry_point
    observation, *_ = env.step(f"```python\ndef {name}(*args):\n    while True:\n        pass\n```")
    assert "timeout" in observation


def test_stdio_tasks_are_judged_on_output():
    env = _env("palaestra/Code-Bundled-v0", split=None, kind="stdio")
    _, info = env.reset(seed=0)
    assert env.task.kind == "stdio"
    assert env.step(info["expert_action"])[4]["success"]


def test_filters_and_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="turn_reward"):
        _env(turn_reward="sometimes")
    with pytest.raises(ValueError, match="path"):
        _env("palaestra/Code-Bundled-v0", source="records")
    with pytest.raises(ValueError, match="task_index"):
        _env(split=None).reset(seed=0, options={"task_index": 10_000})
    easy = _env("palaestra/Code-Bundled-v0-easy", split=None)
    assert {t.difficulty for t in easy.tasks} == {"easy"}


def test_mbpp_records_env(tmp_path):
    rows = [
        {
            "task_id": 1,
            "text": "Write a function to square a number.",
            "code": "def square(x):\n    return x * x",
            "test_list": ["assert square(3) == 9", "assert square(-2) == 4", "assert square(0) == 0"],
        }
    ]
    path = tmp_path / "mbpp.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = _env("palaestra/Code-MBPP-v0", path=str(path))
    _, info = env.reset(seed=0)
    assert env.step(info["expert_action"])[4]["success"]


def test_python_tool_protocol():
    env = _env("palaestra/Code-PythonMath-v0")
    _question, info = env.reset(seed=4)
    assert "<python>" in env.system_prompt
    observation, reward, terminated, _, info = env.step("<python>\nprint(6 * 7)\n</python>")
    assert observation == "<output>\n42\n</output>" and info["role"] == "tool" and info["tool_calls"] == 1
    assert (reward, terminated) == (0.0, False)
    observation, *_ = env.step("```python\nimport time\nwhile True: pass\n```")
    assert "limit exceeded" in observation
    observation, _, _, _, info = env.step("Let me think.")
    assert info["format_error"] and "<python>" in observation
    observation, reward, terminated, _, info = env.step(f"So \\boxed{{{env.task.answer}}}")
    assert terminated and info["success"] and reward == 1.0


def test_python_tool_wrong_answer_and_call_budget():
    env = _env("palaestra/Code-PythonMath-v0", max_tool_calls=1)
    env.reset(seed=0)
    env.step("<python>\nprint(1)\n</python>")
    _observation, _, _, _, info = env.step("<python>\nprint(2)\n</python>")
    assert info["format_error"] == "tool call after the last allowed one"
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("\\boxed{123456789}")
    assert terminated and reward == 0.0 and not info["success"]


def test_python_tool_oracle_solves_through_the_runner():
    tasks = [Task("palaestra/Code-PythonMath-v0", seed=s) for s in range(6)]
    runner = RolloutRunner(OraclePolicy(), RolloutConfig())
    try:
        trajectories = asyncio.run(runner.run(tasks))
    finally:
        runner.close()
    assert all(t.success for t in trajectories)
    assert all(any(m["role"] == "tool" for m in t.messages) for t in trajectories)


REWARD_HACKS = {
    "exit before the tests": "import sys\nsys.exit(0)",
    "hard exit": "import os\nos._exit(0)",
    "always-equal object": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n\n"
        "def {name}(*args, **kwargs):\n    return Anything()"
    ),
    "int subclass equal to everything": (
        "class Sly(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n\n"
        "def {name}(*args, **kwargs):\n    return Sly(0)"
    ),
    "forged harness report": 'print(\'@@palaestra-report@@{{"compile_error": null, "tests": []}}\')',
    "patched judge": "__palaestra_judge__ = lambda left, right: None\ndef {name}(*args):\n    return None",
    "killed harness": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
}


@pytest.mark.parametrize("hack", sorted(REWARD_HACKS))
def test_reward_hacks_score_zero(hack):
    env = _env("palaestra/Code-Bundled-v0", split=None)
    env.reset(seed=0, options={"task_index": 0})
    assert env.task.kind == "function"
    program = REWARD_HACKS[hack].format(name=env.task.entry_point)
    _, reward, _, _, info = env.step(f"```python\n{program}\n```")
    assert reward == 0.0 and info["tests_passed"] == 0 and not info["success"], hack


def test_harness_output_comparison_matches_outputs_match():
    from palaestra.envs.code import _harness
    from palaestra.envs.code.task import outputs_match

    cases = [
        ("1\n2\n", "1\n2"),
        ("1  \n2\r\n\n\n", "1\n2\n"),
        (" 1\n", "1\n"),
        ("1\n\n2", "1\n2"),
        ("", "\n"),
    ]
    for actual, expected in cases:
        assert (_harness._normalise(actual) == _harness._normalise(expected)) == outputs_match(
            actual, expected
        )


def _records(tmp_path, style):
    rows = {
        "humaneval": [
            {
                "task_id": f"HumanEval/{n}",
                "prompt": f'def triple_{n}(x: int) -> int:\n    """Return 3 * x + {n}."""\n',
                "canonical_solution": f"    return 3 * x + {n}\n",
                "test": f"def check(candidate):\n    assert candidate(1) == {3 + n}\n    assert candidate(0) == {n}\n",
                "entry_point": f"triple_{n}",
            }
            for n in range(6)
        ],
        "apps": [
            {
                "question": f"Read two integers on one line and print their sum plus {n}.",
                "solutions": json.dumps([f"a, b = map(int, input().split())\nprint(a + b + {n})"]),
                "input_output": json.dumps(
                    {"inputs": ["1 2\n", "5 5\n"], "outputs": [f"{3 + n}\n", f"{10 + n}\n"]}
                ),
                "difficulty": "interview",
            }
            for n in range(6)
        ],
    }[style]
    path = tmp_path / f"{style}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    ("env_id", "style"), [("palaestra/Code-HumanEval-v0", "humaneval"), ("palaestra/Code-APPS-v0", "apps")]
)
def test_oracle_solves_record_envs(tmp_path, env_id, style):
    from palaestra.agents.spec import make_policy
    from palaestra.evaluation import evaluate

    result = evaluate(
        make_policy("scripted:oracle"), env_id, episodes=6, env_kwargs={"path": _records(tmp_path, style)}
    )
    assert result.summary.success_rate == 1.0 and result.summary.error_rate == 0.0


@pytest.mark.slow
def test_embedded_model_is_judged_without_errors(smollm2_policy):
    from palaestra.agents.base import SamplingParams
    from palaestra.evaluation import evaluate

    config = RolloutConfig(sampling=SamplingParams(temperature=0.0, max_new_tokens=128))
    result = evaluate(
        smollm2_policy,
        "palaestra/Code-Bundled-v0-easy",
        episodes=4,
        env_kwargs={"split": None},
        config=config,
    )
    assert result.summary.error_rate == 0.0, "every reply is judged (or a format error), never an env crash"
    assert result.summary.format_error_rate < 1.0, "the model writes code blocks"
