r"""Final-answer extraction and judging with math-verify.

Where the answer is taken from, in order (the first that applies wins):
    1. the last well-formed `\boxed{...}` (or `\fbox{...}`) in the reply;
    2. the text after the last "answer is" / "answer:" / "answer =" (e.g. "The final answer is 72.",
       "**Answer:** 3/4"), up to the end of that line or sentence, if it reads as math;
    3. math-verify's own extraction on the end of the reply: the last LaTeX span or plain number or
       expression ("7 + 5 = 12" gives 12). This keeps small models that ignore the format scorable.
A reply where none applies (no number or formula at all), or whose `\boxed{}` is empty or unreadable,
has a format error whose message states the expected format.

The answer text is cleaned before parsing, the same way for the gold answer: `$`/`\(...\)` delimiters,
currency signs (`$18`, `\$18`), trailing unit words (`18 dollars`, `\text{12 apples}`) and thousands
separators (`1,000`) are removed, and `x = 3` or `12/4 = 3` keep their right-hand side. Values are then
compared by math-verify (sympy), so `1/2`, `0.5` and `\frac{1}{2}` are the same answer. An answer
with more binary operators than the gold one (`2 + 6` for 8, `\frac{1}{2}+\frac{1}{3}` for 5/6) is
an expression still to evaluate, not a final answer: a format error. Without this rule, a policy
trained with RL learns to restate the question ("2 + 6 =") and is judged correct every time.

Timeouts and threads: math-verify bounds its work with `signal.alarm`, which only works in the main
thread. In the main thread we pass its timeouts (`MATH_VERIFY_TIMEOUT_S`); elsewhere (e.g. a rollout's
thread pool) we pass `parsing_timeout=None` / `timeout_seconds=None` and rely on guards that hold in
every thread: only the last `MAX_TAIL_CHARS` characters of a reply go to math-verify's fallback
extraction, an extracted answer may have at most `MAX_ANSWER_CHARS` characters and `MAX_NESTING`
levels of brackets (latex parsing is exponential in brace depth), and a parsed answer whose exact value
would have more than `MAX_RESULT_DIGITS` digits (`9^{9^{9^9}}`, `(10^{10})!`) is refused before sympy
evaluates it. Refused answers are format errors. Calls into math-verify are serialized by a lock (it
keeps module-level caches and parser state).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import sympy
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

__all__ = [
    "FORMAT_HINT",
    "MAX_ANSWER_CHARS",
    "MAX_NESTING",
    "MAX_RESULT_DIGITS",
    "MAX_TAIL_CHARS",
    "Judgement",
    "ParsedAnswer",
    "extract_answer",
    "gsm8k_gold",
    "is_correct",
    "last_boxed",
    "math_gold",
]

MAX_TAIL_CHARS = 1000
"""Only this many final characters of a reply are searched by the fallback extraction (step 3)."""
MAX_ANSWER_CHARS = 1000
"""Longest extracted answer that is parsed."""
MAX_NESTING = 8
"""Deepest bracket nesting ((), [], {}) of an answer that is parsed."""
MAX_RESULT_DIGITS = 100_000
"""Largest number of digits a power or factorial in an answer may evaluate to."""
MATH_VERIFY_TIMEOUT_S = 5
"""math-verify's own parse/compare timeouts, used in the main thread only."""

FORMAT_HINT = r"Put your final answer in \boxed{}, e.g. \boxed{42}."

AnswerSource = Literal["boxed", "anchor", "last_expression"]

_LATEX = (LatexExtractionConfig(boxed_match_priority=0),)
_EXPR = (ExprExtractionConfig(),)
_FALLBACK = (LatexExtractionConfig(), ExprExtractionConfig())
_LOCK = threading.RLock()
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANCHOR_RE = re.compile(r"\banswer\b(?:\s*\*\*)?\s*(?:is\b\s*:?|:|=)\s*(?:\*\*)?", re.IGNORECASE)
_REGION_END_RE = re.compile(r"\n|\.(?=\s|$)|;|,\s+(?=[A-Za-z]{2})")
_TEXT_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\s*\{([^{}]*)\}")
_CURRENCY_RE = re.compile(r"^([-+]?)\s*(?:\\\$|\$|€|£|¥|₹|US\$|USD)\s*")
_UNIT_WORDS_RE = re.compile(r"([-+]?[\d.,/%\s]*\d%?)\s+((?:[A-Za-z]{2,}[.']?\s*)+)")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:(?:,|\{,\}|\\,|\s)\d{3})+(?:\.\d+)?")
_THOUSANDS_SEP_RE = re.compile(r",|\{,\}|\\,|\s")
_EQUALS_RE = re.compile(r"(?<![<>!=\\])=(?!=)")
_SIMPLE_LHS_RE = re.compile(r"\s*(?:[A-Za-z](?:_\{?\w+\}?)?|[\d\s.+\-*/×÷^()]+)\s*")
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_INT_FRACTION_RE = re.compile(r"(?<![\w.])\d+\s*/\s*\d+(?![\w.])")
_BINARY_OP_RE = re.compile(r"(?<=[\w)\]}])\s*(?:[-+*/×÷^·]|\\(?:cdot|times|div)(?![A-Za-z]))")
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"))


@dataclass(frozen=True)
class ParsedAnswer:
    """An answer found in a reply.

    Attributes:
        text: the cleaned answer text (e.g. "18" for "$18 dollars").
        source: where it was found: "boxed", "anchor" ("The answer is ...") or "last_expression".
        value: math-verify's parse of the text (sympy objects); empty if it could not be read.
        error: why the answer is refused (too long, too deep, too large to evaluate), else None.
    """

    text: str
    source: AnswerSource
    value: tuple[object, ...]
    error: str | None = None


@dataclass(frozen=True)
class Judgement:
    """The verdict on one reply.

    Attributes:
        correct: the reply's final answer equals the gold answer.
        extracted: the answer text taken from the reply, or None if none was found.
        format_error: why no answer could be read (the message states the expected format), else None.
    """

    correct: bool
    extracted: str | None
    format_error: str | None


def _timeout() -> int | None:
    """math-verify's timeout: its signal-based alarm only works in the main thread."""
    return MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


class _TimeoutOffByDesign(logging.Filter):
    """Drops math-verify's "Timeout is disabled" warning. Outside the main thread we pass no timeout on
    purpose and bound the work with the guards of the module docstring, so the warning (printed once
    per process, first in a rollout thread or the async producer) tells the user nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):  # the two places it is raised
    logging.getLogger(_name).addFilter(_TimeoutOffByDesign())


def _mv_parse(text: str, config: Sequence[object], fallback: bool = False) -> list[object]:
    with _LOCK:
        return parse(
            text,
            extraction_config=list(config),
            fallback_mode="first_match" if fallback else "no_fallback",
            parsing_timeout=_timeout(),  # None disables the alarm
        )


def _matching_braces(text: str) -> dict[int, int]:
    """Map the index of each balanced "{" to its "}" (one linear pass)."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for i, char in enumerate(text):
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def last_boxed(text: str) -> str | None:
    r"""The content of the last well-formed `\boxed{...}` (or `\fbox{...}`) in `text`, or None."""
    starts = [m.end() - 1 for m in _BOX_RE.finditer(text)]
    if not starts:
        return None
    pairs = _matching_braces(text)
    for brace in reversed(starts):
        if brace in pairs:
            return text[brace + 1 : pairs[brace]]
    return None


def _nesting_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth = max(depth - 1, 0)
    return deepest


def _strip_delimiters(text: str) -> str:
    s = text.strip()
    for _ in range(3):
        before = s
        s = s.rstrip(".,;").strip()
        for left, right in _DELIMITERS:
            if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : -len(right)].strip()
        if s == before:
            break
    return s


def _clean(text: str) -> str:
    """Normalise an answer's text (see the module docstring); applied to replies and gold alike."""
    s = _strip_delimiters(text)
    s = _TEXT_RE.sub(lambda m: f" {m.group(1).strip()}", s).strip()
    s = _CURRENCY_RE.sub(r"\1", s)
    if m := _UNIT_WORDS_RE.fullmatch(s):
        s = m.group(1).strip()
    if _THOUSANDS_RE.fullmatch(s):
        s = _THOUSANDS_SEP_RE.sub("", s)
    if "," not in s and ";" not in s:
        parts = _EQUALS_RE.split(s)
        if len(parts) > 1 and parts[-1].strip() and all(_SIMPLE_LHS_RE.fullmatch(p) for p in parts[:-1]):
            s = parts[-1].strip()
    return _strip_delimiters(s)


def _log10_magnitude(expr: sympy.Basic) -> float:
    """log10 of |expr| (inf if it cannot be evaluated)."""
    try:
        value = abs(complex(expr.evalf(15)))
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        return math.inf
    if math.isnan(value) or math.isinf(value):
        return math.inf
    return math.log10(value) if value > 0 else -math.inf


def _too_costly(value: Sequence[object]) -> bool:
    """Whether evaluating `value` exactly could take sympy forever (huge powers and factorials)."""
    for item in value:
        if not isinstance(item, sympy.Basic):
            continue
        for node in sympy.preorder_traversal(item):
            if isinstance(node, sympy.Pow) and node.base.is_number and node.exp.is_number:
                log_base = _log10_magnitude(node.base)
                if log_base in (0.0, -math.inf):  # base 0 or of magnitude 1: cheap at any exponent
                    continue
                exp_magnitude = _log10_magnitude(node.exp)
                if exp_magnitude > 12 or 10**exp_magnitude * abs(log_base) > MAX_RESULT_DIGITS:
                    return True
            elif isinstance(node, (sympy.factorial, sympy.factorial2, sympy.subfactorial, sympy.gamma)):
                arg = node.args[0]
                if arg.is_number and _log10_magnitude(arg) > 4:
                    return True
    return False


def _read(text: str, source: AnswerSource) -> ParsedAnswer:
    """Clean and parse an extracted answer, refusing what the guards forbid."""
    s = _clean(text)
    if len(s) > MAX_ANSWER_CHARS:
        return ParsedAnswer(s[:80] + "...", source, (), f"the answer is too long ({len(s)} characters)")
    if _nesting_depth(s) > MAX_NESTING:
        return ParsedAnswer(s, source, (), f"the answer nests brackets deeper than {MAX_NESTING} levels")
    value = tuple(_mv_parse(f"\\boxed{{{s}}}", _LATEX) if s else ())
    if not value and s:
        value = tuple(_mv_parse(s, _EXPR))
    if _too_costly(value):
        return ParsedAnswer(s, source, (), "the answer is too large to evaluate; simplify it")
    return ParsedAnswer(s, source, value)


def extract_answer(reply: str) -> ParsedAnswer | None:
    r"""Find and parse the final answer of a reply (see the module docstring for the order).

    Args:
        reply: the assistant's whole reply.

    Returns:
        The answer, or None if the reply holds no boxed answer, no "answer is" phrase that reads as
        math, and no number or formula at all. A `\boxed{}` that cannot be read gives an answer with an
        empty `value`.
    """
    boxed = last_boxed(reply)
    if boxed is not None:
        return _read(boxed, "boxed")
    anchor = None
    for anchor in _ANCHOR_RE.finditer(reply):  # noqa: B007  (keep the last match)
        pass
    if anchor is not None:
        region = reply[anchor.end() : anchor.end() + MAX_ANSWER_CHARS + 1]
        end = _REGION_END_RE.search(region)
        answer = _read(region[: end.start()] if end else region, "anchor")
        if (answer.value or answer.error) and not _WORD_RE.search(answer.text):
            return answer  # else prose ("the answer is not 5, it's 6"): use the last expression
    tail = re.sub(r"-\s*\$(?=\d)", "-", reply[-MAX_TAIL_CHARS:].replace("\\$", " "))
    config = _FALLBACK if _nesting_depth(tail) <= MAX_NESTING else _EXPR
    found = _mv_parse(tail, config, fallback=True)
    value = tuple(v for v in found if not isinstance(v, str))
    text = next((v for v in found if isinstance(v, str)), None)
    if not value:
        return None
    if _too_costly(value):
        return ParsedAnswer(text or "", "last_expression", (), "the answer is too large to evaluate")
    return ParsedAnswer(text if text is not None else str(value[0]), "last_expression", value)


@lru_cache(maxsize=4096)
def _gold(gold: str) -> tuple[str, tuple[object, ...]]:
    boxed = last_boxed(gold)
    answer = _read(boxed if boxed is not None else gold, "boxed")
    return answer.text, answer.value


def _operator_count(text: str) -> int:
    """Binary operators (+ - * / ^ and LaTeX's cdot/times/div) in an answer; `3/4` is a number, not one."""
    return len(_BINARY_OP_RE.findall(_INT_FRACTION_RE.sub("q", text)))


def _same_text(a: str, b: str) -> bool:
    return re.sub(r"\s+", "", a).lower() == re.sub(r"\s+", "", b).lower() and bool(a.strip())


def is_correct(reply: str, gold: str) -> Judgement:
    r"""Judge a reply against a gold answer.

    Args:
        reply: the assistant's whole reply.
        gold: the gold final answer ("72", "\frac{7}{12}", "x = 3"; a `\boxed{}` inside is unwrapped).
            Gold answers math-verify cannot read (e.g. "\text{Evelyn}") are compared as text.

    Returns:
        The judgement; `format_error` is set (and `correct` False) when no answer could be read.
    """
    if not isinstance(reply, str):
        return Judgement(False, None, f"the reply must be text, got {type(reply).__name__}. {FORMAT_HINT}")
    gold_text, gold_value = _gold(gold)
    answer = extract_answer(reply)
    if answer is None:
        return Judgement(False, None, f"no final answer found. {FORMAT_HINT}")
    if answer.error is not None:
        return Judgement(False, answer.text, f"{answer.error}. {FORMAT_HINT}")
    if not gold_value:
        return Judgement(_same_text(answer.text, gold_text), answer.text, None)
    if not answer.value:
        what = "the \\boxed{} is empty" if not answer.text else f"could not read {answer.text!r} as math"
        return Judgement(False, answer.text, f"{what}. {FORMAT_HINT}")
    if _operator_count(answer.text) > _operator_count(gold_text):
        # "2 + 6" equals 8 to sympy, but restating the problem is not solving it (RL finds this)
        return Judgement(
            False,
            answer.text,
            f"{answer.text!r} is an expression still to evaluate; give its value. {FORMAT_HINT}",
        )
    with _LOCK:
        correct = verify(list(gold_value), list(answer.value), timeout_seconds=_timeout())
    return Judgement(bool(correct), answer.text, None)


def gsm8k_gold(answer: str) -> str:
    """The final answer of a GSM8K answer field ("...reasoning...\\n#### 1,080" -> "1080").

    Raises:
        ValueError: the text has no "#### <answer>" line.
    """
    if "####" not in answer:
        raise ValueError(f"GSM8K answer has no '#### <final answer>' marker: {answer[-80:]!r}")
    gold = answer.rsplit("####", 1)[1].strip()
    if not gold:
        raise ValueError(f"GSM8K answer has nothing after '####': {answer[-80:]!r}")
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", gold)


def math_gold(solution: str) -> str:
    r"""The final answer of a MATH solution: the content of its last `\boxed{}`.

    Raises:
        ValueError: the solution has no well-formed `\boxed{...}`.
    """
    boxed = last_boxed(solution)
    if boxed is None or not boxed.strip():
        raise ValueError(f"MATH solution has no \\boxed{{...}} answer: {solution[-80:]!r}")
    return boxed.strip()
