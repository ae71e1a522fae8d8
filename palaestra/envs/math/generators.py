"""Procedural math problems: arithmetic, fractions, linear equations (word problems: `word_problems`).

Every generator is a pure function of a `numpy.random.Generator` and a difficulty, returning a
`Problem` (question, gold answer, short worked solution). `generate` wraps one into a `MathTask` in the
requested split: it rejection-samples until the question's hash puts it in that split (see
`palaestra.envs.math.task`), so train and test never share a question. Every answer is exact: integers,
or fractions in lowest terms.

Difficulties:
    arithmetic: easy = two operands in 1..20 with + or - (never negative); medium = three operands
        with + - * and no parentheses (factors up to 12); hard = four or five operands, parentheses,
        exact division and negative numbers.
    fractions: easy = add or subtract two fractions with denominators up to 6; medium = + - * with
        denominators up to 12; hard = three fractions, + - * and parentheses.
    linear_equation: easy = a*x + b = d; medium = a*x + b = c*x + d; hard = a*(x + p) + b = c*x + d
        with larger and negative coefficients. The solution x is always an integer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from palaestra.envs.math.problem import Problem, _int, _pick
from palaestra.envs.math.task import SPLITS, MathTask
from palaestra.envs.math.word_problems import word_problem

__all__ = [
    "DIFFICULTIES",
    "GENERATORS",
    "Problem",
    "arithmetic",
    "fractions",
    "generate",
    "linear_equation",
]

DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")


# -- arithmetic ------------------------------------------------------------------------------------
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


@dataclass(frozen=True)
class _Node:
    """An arithmetic expression tree; a leaf has `op` None and its number in `value`."""

    value: int
    op: str | None = None
    left: _Node | None = None
    right: _Node | None = None

    def render(self, first: bool = True) -> str:
        if self.op is None:
            return f"({self.value})" if self.value < 0 and not first else str(self.value)
        assert self.left is not None and self.right is not None
        left = self.left.render(first)
        right = self.right.render(False)
        if self.left.op and _PRECEDENCE[self.left.op] < _PRECEDENCE[self.op]:
            left = f"({self.left.render(True)})"
        if self.right.op and (
            _PRECEDENCE[self.right.op] < _PRECEDENCE[self.op]
            or (_PRECEDENCE[self.right.op] == _PRECEDENCE[self.op] and self.op in "-/")
        ):
            right = f"({self.right.render(True)})"
        return f"{left} {self.op} {right}"

    def steps(self) -> list[str]:
        """The worked solution: one "a op b = c" line per operation, innermost first."""
        if self.op is None:
            return []
        assert self.left is not None and self.right is not None
        right = f"({self.right.value})" if self.right.value < 0 else str(self.right.value)
        return [
            *self.left.steps(),
            *self.right.steps(),
            f"{self.left.value} {self.op} {right} = {self.value}",
        ]


def _apply(op: str, a: int, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    assert b != 0 and a % b == 0, (a, b)
    return a // b


def _tree(rng: np.random.Generator, n_operands: int, ops: tuple[str, ...], low: int, high: int) -> _Node:
    """A random expression tree; "*" takes factors up to 12 and "/" always divides exactly."""
    if n_operands == 1:
        return _Node(_int(rng, low, high))
    op = _pick(rng, ops)
    n_left = n_operands - 1 if op in "*/" else _int(rng, 1, n_operands - 1)
    left = _tree(rng, n_left, ops, low, high)
    if op == "/":
        divisors = [d for d in range(2, 13) if left.value != 0 and left.value % d == 0]
        if divisors:
            right = _Node(divisors[int(rng.integers(len(divisors)))])
            return _Node(_apply("/", left.value, right.value), "/", left, right)
        op = "*"
    right = _Node(_int(rng, 2, 12)) if op == "*" else _tree(rng, n_operands - n_left, ops, low, high)
    return _Node(_apply(op, left.value, right.value), op, left, right)


def arithmetic(rng: np.random.Generator, difficulty: str = "medium") -> Problem:
    """An arithmetic expression to evaluate (see the module docstring for the difficulties)."""
    if difficulty == "easy":
        a, b = _int(rng, 1, 20), _int(rng, 1, 20)
        op = _pick(rng, ("+", "-"))
        if op == "-" and b > a:
            a, b = b, a
        tree = _Node(_apply(op, a, b), op, _Node(a), _Node(b))
    elif difficulty == "medium":
        tree = _tree(rng, 3, ("+", "-", "*"), 1, 50)
        while "(" in tree.render():  # parentheses are for hard problems
            tree = _tree(rng, 3, ("+", "-", "*"), 1, 50)
    else:
        tree = _tree(rng, _int(rng, 4, 5), ("+", "-", "*", "/"), -20, 30)
    expression = tree.render()
    question = f"What is {expression}?" if difficulty == "easy" else f"Compute {expression}."
    return Problem(question, str(tree.value), "; ".join(tree.steps()) + ".")


# -- fractions -------------------------------------------------------------------------------------
def _fraction(rng: np.random.Generator, max_den: int) -> Fraction:
    den = _int(rng, 2, max_den)
    return Fraction(_int(rng, 1, den - 1 if rng.random() < 0.8 else 2 * den), den)


def _text(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def _combine(op: str, a: Fraction, b: Fraction) -> Fraction:
    return a + b if op == "+" else a - b if op == "-" else a * b


def fractions(rng: np.random.Generator, difficulty: str = "medium") -> Problem:
    """Add, subtract or multiply fractions; the answer is a fraction in lowest terms (or an integer)."""
    max_den = 6 if difficulty == "easy" else 12
    ops = ("+", "-") if difficulty == "easy" else ("+", "-", "*")
    a, b = _fraction(rng, max_den), _fraction(rng, max_den)
    op = _pick(rng, ops)
    while a == b:  # "3/4 - 3/4" is not worth asking
        b = _fraction(rng, max_den)
    if difficulty != "hard":
        value = _combine(op, a, b)
        expression = f"{_text(a)} {op} {_text(b)}"
        steps = [f"{_text(a)} {op} {_text(b)} = {_text(value)}"]
    else:
        c, outer = _fraction(rng, max_den), _pick(rng, ops)
        inner = _combine(op, b, c)
        value = _combine(outer, a, inner)
        expression = f"{_text(a)} {outer} ({_text(b)} {op} {_text(c)})"
        steps = [
            f"{_text(b)} {op} {_text(c)} = {_text(inner)}",
            f"{_text(a)} {outer} {_text(inner)} = {_text(value)}",
        ]
    question = f"Compute {expression}. Give the answer as a fraction in lowest terms."
    return Problem(question, _text(value), "; ".join(steps) + ".")


# -- linear equations ------------------------------------------------------------------------------
def _linear(coef: int, const: int) -> str:
    """Render coef*x + const, e.g. "3x - 4", "-x", "7"."""
    if coef == 0:
        return str(const)
    term = "x" if coef == 1 else "-x" if coef == -1 else f"{coef}x"
    if const == 0:
        return term
    return f"{term} {'+' if const > 0 else '-'} {abs(const)}"


def _nonzero(rng: np.random.Generator, low: int, high: int) -> int:
    value = 0
    while value == 0:
        value = _int(rng, low, high)
    return value


def linear_equation(rng: np.random.Generator, difficulty: str = "medium") -> Problem:
    """Solve a*x + b = c*x + d for an integer x."""
    big = 20 if difficulty == "hard" else 10
    x = _int(rng, -big, big)
    a = _nonzero(rng, -9, 9) if difficulty == "hard" else _int(rng, 2, 9)
    c = 0 if difficulty == "easy" else _nonzero(rng, -9, 9)
    while c == a:
        c = _nonzero(rng, -9, 9)
    b = _int(rng, -big, big)
    d = (a - c) * x + b
    if difficulty == "hard":
        p = _nonzero(rng, -9, 9)
        left = f"{'' if a == 1 else '-' if a == -1 else a}(x {'+' if p > 0 else '-'} {abs(p)})"
        left += f" {'+' if b - a * p >= 0 else '-'} {abs(b - a * p)}" if b != a * p else ""
        expand = f"Expand: {_linear(a, b)} = {_linear(c, d)}. "
    else:
        left, expand = _linear(a, b), ""
    question = f"Solve for x: {left} = {_linear(c, d)}."
    k, r = (a - c, d - b) if a > c else (c - a, b - d)
    solution = f"{expand}Collect the x terms on one side: {_linear(k, 0)} = {r}, so x = {r}/{k} = {x}."
    return Problem(question, str(x), solution)


# -- registry and splits ---------------------------------------------------------------------------
GENERATORS: dict[str, Callable[[np.random.Generator, str], Problem]] = {
    "arithmetic": arithmetic,
    "word_problem": word_problem,
    "fractions": fractions,
    "linear_equation": linear_equation,
}
"""Generator name -> function(rng, difficulty) -> Problem."""


def generate(
    source: str,
    rng: np.random.Generator,
    *,
    difficulty: str = "medium",
    split: str | None = "train",
    max_tries: int = 10_000,
) -> MathTask:
    """Draw one task of a generator, in a split.

    Args:
        source: a name in `GENERATORS`.
        rng: the only source of randomness (same generator state -> same task).
        difficulty: "easy", "medium" or "hard".
        split: "train" or "test" (rejection-sampled by question hash), or None for either.
        max_tries: give up after this many draws (only a tiny problem space could need it).

    Raises:
        ValueError: unknown source, difficulty or split.
        RuntimeError: no problem of the split was drawn in `max_tries` draws.
    """
    if source not in GENERATORS:
        raise ValueError(f"unknown generator {source!r}; choose one of {sorted(GENERATORS)}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty={difficulty!r}; choose one of {DIFFICULTIES}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split={split!r}; choose 'train', 'test' or None")
    for _ in range(max_tries):
        problem = GENERATORS[source](rng, difficulty)
        task = MathTask(problem.question, problem.answer, problem.solution, source)
        if split is None or task.split == split:
            return task
    raise RuntimeError(f"no {split!r} problem of {source!r} ({difficulty}) in {max_tries} draws")
