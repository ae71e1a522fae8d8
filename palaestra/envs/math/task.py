"""The math task record shared by the generators and the records loader, and the hash split.

Train/test split: a problem belongs to split "test" iff the 64-bit blake2b hash of its question text
is 0 mod 10 (about 10% of problems), else to "train". The split is a function of the question text
alone, so the two splits can never share a question, whatever seeds, difficulties or files produced
them; procedural generators rejection-sample until the problem falls in the requested split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

__all__ = ["SPLITS", "MathTask", "Split", "question_hash", "split_of"]

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")
TEST_MODULUS = 10
"""A question is in "test" iff question_hash(question) % TEST_MODULUS == 0."""


def question_hash(question: str) -> int:
    """Stable 64-bit hash of a question's text (blake2b; identical across processes and machines)."""
    digest = hashlib.blake2b(question.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def split_of(question: str) -> Split:
    """The split ("train" or "test") a question belongs to; see the module docstring."""
    return "test" if question_hash(question) % TEST_MODULUS == 0 else "train"


@dataclass(frozen=True)
class MathTask:
    """One math problem.

    Attributes:
        question: the problem statement shown to the agent.
        answer: the gold final answer (LaTeX or plain text, e.g. "72", "\\frac{7}{12}", "-3").
        solution: a short worked solution (may be empty); the expert reply starts with it.
        source: the generator name ("arithmetic", ...) or "records".
    """

    question: str
    answer: str
    solution: str
    source: str

    @property
    def task_id(self) -> str:
        """Stable id: the source and the hash of the question, e.g. "arithmetic-3fa2b1c0d9e87a65"."""
        return f"{self.source}-{question_hash(self.question):016x}"

    @property
    def split(self) -> Split:
        """The hash split of this task's question."""
        return split_of(self.question)

    @property
    def expert_action(self) -> str:
        """A correct reply: the worked solution, then the answer in `\\boxed{}`."""
        final = f"The final answer is \\boxed{{{self.answer}}}."
        return f"{self.solution.strip()}\n\n{final}" if self.solution.strip() else final
