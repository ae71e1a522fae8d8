"""Code-execution environments: programs judged by tests in the sandbox, and a Python tool for math.

Importing this package only registers the env ids (lazy entry points: the sandbox, the tasks and
math-verify load when an env is first made).

    palaestra/Code-Bundled-v0        the bundled task set (45 original tasks), one program per task
    palaestra/Code-Bundled-v0-easy   preset: the bundled easy tasks only
    palaestra/Code-Repair-v0         bundled tasks, up to 3 programs with test feedback (RLEF-style)
    palaestra/Code-MBPP-v0         MBPP-style records from `path`
    palaestra/Code-HumanEval-v0    HumanEval-style records from `path`
    palaestra/Code-APPS-v0         APPS-style records from `path` (stdin/stdout and call-based)
    palaestra/Code-PythonMath-v0   hard arithmetic with a sandboxed Python tool (3 calls), then answer
"""

from __future__ import annotations

from typing import Any

from palaestra.envs.registration import register_env

_CODE_ENTRY = "palaestra.envs.code.env:CodeEnv"
_TOOL_ENTRY = "palaestra.envs.code.python_tool:PythonToolMathEnv"
_REPAIR_ATTEMPTS = 3


def _register(name: str, description: str, *, required: tuple[str, ...] = (), **kwargs: Any) -> None:
    register_env(
        f"palaestra/Code-{name}-v0",
        _CODE_ENTRY,
        description=description,
        family="Code",
        max_turns=kwargs.get("max_attempts", 1),
        reward_range=(0.0, 1.0),
        required_kwargs=required,
        kwargs=kwargs,
    )


_register("Bundled", "Write a Python program that passes hidden tests (45 bundled tasks, 3 difficulties)")
register_env(
    "palaestra/Code-Bundled-v0-easy",
    _CODE_ENTRY,
    description="The bundled easy programming tasks only (small models score here)",
    family="Code",
    kwargs={"difficulty": "easy"},
)
register_env(
    "palaestra/Code-Repair-v0",
    _CODE_ENTRY,
    description="Bundled tasks with test feedback: up to 3 programs, reward = gain in tests passed",
    family="Code",
    max_turns=_REPAIR_ATTEMPTS,
    kwargs={"max_attempts": _REPAIR_ATTEMPTS},
)
for _style, _name, _what in (
    ("mbpp", "MBPP", "MBPP-style records (text, code, test_list) from path=..."),
    ("humaneval", "HumanEval", "HumanEval-style records (prompt, test, entry_point) from path=..."),
    ("apps", "APPS", "APPS-style records (question, input_output, solutions) from path=..."),
):
    _register(_name, _what, required=("path",), source="records", record_style=_style, split=None)
register_env(
    "palaestra/Code-PythonMath-v0",
    _TOOL_ENTRY,
    description="Hard arithmetic with a sandboxed Python tool (up to 3 calls), answer in \\boxed{}",
    family="Code",
    max_turns=4,
    kwargs={"source": "arithmetic", "difficulty": "hard", "max_tool_calls": 3},
)
