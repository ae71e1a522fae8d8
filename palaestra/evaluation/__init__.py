"""Evaluation: roll out a policy on envs and summarize the results."""

from __future__ import annotations

from palaestra.evaluation.evaluate import (
    RESULTS_SCHEMA_VERSION,
    EvalResult,
    evaluate,
    evaluate_async,
    summary_table,
    write_results,
)
from palaestra.evaluation.matches import evaluate_against
from palaestra.evaluation.stats import EvalSummary, summarize, wilson_interval

__all__ = [
    "RESULTS_SCHEMA_VERSION",
    "EvalResult",
    "EvalSummary",
    "evaluate",
    "evaluate_against",
    "evaluate_async",
    "summarize",
    "summary_table",
    "wilson_interval",
    "write_results",
]
