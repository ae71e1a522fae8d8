"""Math environments: procedural problems and GSM8K/MATH records, judged by math-verify.

Importing this package only registers the env ids: the entry points are lazy "module:Class" strings,
so math-verify, sympy and datasets are imported when an env is first made, not here.

    palaestra/Math-Arith-v0          medium arithmetic (three operands, + - *)
    palaestra/Math-ArithEasy-v0      easy arithmetic (a + b or a - b, operands up to 20)
    palaestra/Math-ArithRetry-v0     easy arithmetic, "try again" mode with 3 attempts
    palaestra/Math-WordProblem-v0    2-3 step word problems
    palaestra/Math-Fractions-v0      add, subtract or multiply fractions
    palaestra/Math-LinearEq-v0       solve a*x + b = c*x + d
    palaestra/Math-GSM8K-v0          GSM8K-style records from `path`
    palaestra/Math-MATH-v0           MATH-style records from `path`
"""

from __future__ import annotations

from typing import Any

from palaestra.envs.registration import register_env

_ENTRY_POINT = "palaestra.envs.math.env:MathEnv"
_RETRY_ATTEMPTS = 3


def _register(name: str, description: str, *, required: tuple[str, ...] = (), **kwargs: Any) -> None:
    attempts = kwargs.get("max_attempts", _RETRY_ATTEMPTS) if kwargs.get("mode") == "retry" else 1
    register_env(
        f"palaestra/Math-{name}-v0",
        _ENTRY_POINT,
        description=description,
        family="Math",
        max_turns=attempts,
        reward_range=(0.0, 1.0),
        required_kwargs=required,
        kwargs=kwargs,
    )


_register(
    "Arith",
    "Evaluate an arithmetic expression (three operands, + - *)",
    source="arithmetic",
    difficulty="medium",
)
_register(
    "ArithEasy",
    "Add or subtract two numbers up to 20 (small models score here)",
    source="arithmetic",
    difficulty="easy",
)
_register(
    "ArithRetry",
    "Easy arithmetic with 'try again' feedback: 3 attempts, reward 0.5**(attempt-1)",
    source="arithmetic",
    difficulty="easy",
    mode="retry",
    max_attempts=_RETRY_ATTEMPTS,
    reward_decay=0.5,
)
_register(
    "WordProblem",
    "Multi-step word problems: shopping, rates, sharing",
    source="word_problem",
    difficulty="medium",
)
_register(
    "Fractions",
    "Add, subtract or multiply fractions; answer in lowest terms",
    source="fractions",
    difficulty="medium",
)
_register(
    "LinearEq",
    "Solve a linear equation a*x + b = c*x + d for integer x",
    source="linear_equation",
    difficulty="medium",
)
_register(
    "GSM8K",
    "Grade-school word problems from a local GSM8K-style file (path=...)",
    required=("path",),
    source="records",
    record_style="gsm8k",
    split=None,
)
_register(
    "MATH",
    "Competition problems from a local MATH-style file (path=...), boxed answers",
    required=("path",),
    source="records",
    record_style="math",
    split=None,
)
