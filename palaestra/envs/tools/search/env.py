"""`SearchEnv`: answer a multi-hop question about a generated world with `search` and `open` tools.

The world (entities, relations, about 2,400 documents) comes from the `world` seed; the question
from the reset seed, at `level` 1, 2 or 3 hops (see `questions`). The agent calls

    search(query, k=5)   the k best documents by BM25: id, title and the best-matching sentence
    open(doc_id)         the whole document

and its first reply without a tool call is its answer, judged exactly after normalisation (case,
whitespace, punctuation, articles): reward 1 if right, else 0. Malformed calls (unreadable JSON, an
unknown tool, a missing or ill-typed argument, a doc id that is not "D" and five digits) are format
errors; an id that names no document is an error the agent sees as the call's result.

The expert (`info["expert_action"]`) works from what the episode has shown so far: for each supporting
document in turn, it opens it if a search has listed it, else searches for it with words from the
question (and from the documents opened before); with every document read, it answers.
"""

from __future__ import annotations

import re
import string
from typing import Any

from palaestra.envs.core import StepOutcome
from palaestra.envs.tools.base import ToolEnv, ToolError
from palaestra.envs.tools.search.documents import make_corpus
from palaestra.envs.tools.search.index import load_index
from palaestra.envs.tools.search.questions import LEVELS, Question, draw_question
from palaestra.tools import ToolCall, function_tool

__all__ = ["DEFAULT_K", "MAX_K", "MAX_TURNS", "SearchEnv", "normalize_answer"]

DEFAULT_K = 5
MAX_K = 20
MAX_TURNS = {1: 6, 2: 10, 3: 14}
"""Replies per episode by level: the expert needs 3, 5 and 7-9 (a search and an open per document,
then the answer)."""
DOC_ID_PATTERN = "^D[0-9]{5}$"

TOOLS = [
    function_tool(
        "search",
        "Search the document collection (BM25). Returns the best documents: id, title and a snippet.",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "pattern": r"\S", "description": "words to search for"},
                "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": "how many results"},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    ),
    function_tool(
        "open",
        "Read a whole document by its id (as listed by search, e.g. D00417).",
        {
            "type": "object",
            "properties": {"doc_id": {"type": "string", "pattern": DOC_ID_PATTERN}},
            "required": ["doc_id"],
            "additionalProperties": False,
        },
    ),
]

SYSTEM_PROMPT = (
    "Answer the question using the document collection. Call search(query, k) to find documents and "
    "open(doc_id) to read one; facts may be spread over several documents, and names can look alike. "
    "When you know the answer, reply with the answer only (a name or a number), without a tool call: "
    "that reply ends the episode."
)

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces: "The Ossel." -> "ossel"."""
    text = _ARTICLES.sub(" ", _PUNCTUATION.sub("", text.lower()))
    return " ".join(text.split())


class SearchEnv(ToolEnv):
    """Multi-hop question answering over a generated corpus with BM25 `search` and `open` tools.

    Args:
        world: seed of the world (entities, relations, documents); its index is built once and cached.
        level: hops per question: 1, 2 or 3 (3: three-hop chains and two-entity comparisons).
        max_turns: replies per episode (default by level: `MAX_TURNS`).
        tool_parser: the reply format of tool calls ("auto", "hermes", "json").
        render_mode: None or "ansi".
    """

    def __init__(
        self,
        *,
        world: int = 0,
        level: int = 2,
        max_turns: int | None = None,
        tool_parser: str = "auto",
        render_mode: str | None = None,
    ):
        if isinstance(world, bool) or not isinstance(world, int) or world < 0:
            raise ValueError(f"world={world!r}; it must be an integer >= 0 (the seed of the generated world)")
        if level not in LEVELS:
            raise ValueError(f"level={level!r}; choose one of {LEVELS} (hops per question)")
        super().__init__(
            max_turns=MAX_TURNS[level] if max_turns is None else max_turns,
            tool_parser=tool_parser,
            render_mode=render_mode,
        )
        self.world, self.level = world, level
        self.tools = TOOLS
        self.system_prompt = SYSTEM_PROMPT
        self.corpus = make_corpus(world)
        self.index = load_index(self.corpus)
        self.question: Question | None = None
        self._listed: set[str] = set()  # doc ids that searches have shown this episode
        self._opened: set[str] = set()

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        self.question = question = draw_question(self.corpus, self.level, self.rng)
        self._listed, self._opened = set(), set()
        info = {
            "task_id": f"world{self.world}/L{self.level}/{question.key}",
            "supporting_docs": list(question.supporting_docs),
            "expert_action": self._expert_action(turn=0),
        }
        return question.text, info

    def _call_tool(self, call: ToolCall) -> str:
        if call.name == "search":
            hits = self.index.search(call.arguments["query"], int(call.arguments.get("k", DEFAULT_K)))
            self._listed.update(hit.doc_id for hit in hits)
            if not hits:
                return f"No document matches {call.arguments['query']!r}."
            return "\n".join(
                f"{i}. {hit.doc_id} | {hit.title}\n   {hit.snippet}" for i, hit in enumerate(hits, 1)
            )
        doc = self.corpus.get(call.arguments["doc_id"])
        if doc is None:
            raise ToolError(f"no document {call.arguments['doc_id']!r}; use an id that search listed")
        self._opened.add(doc.doc_id)
        return f"{doc.doc_id} | {doc.title}\n{doc.text}"

    def _finish(self, answer: str) -> StepOutcome:
        assert self.question is not None, "reset() first"
        ok = bool(answer.strip()) and normalize_answer(answer) == normalize_answer(self.question.answer)
        observation = "Correct." if ok else f"Wrong: the answer is {self.question.answer}."
        return StepOutcome(observation=observation, reward=float(ok), terminated=True, success=ok)

    def _step(self, action: str) -> StepOutcome:
        outcome = super()._step(action)
        if not outcome.terminated:
            outcome.info["expert_action"] = self._expert_action(turn=self.turn + 1)  # turn counts after _step
        return outcome

    def _expert_action(self, turn: int) -> str:
        """Open the next unread supporting document if a search listed it, else search for it; with all
        of them read, answer. `turn` numbers the call's id."""
        assert self.question is not None
        call_id = f"call_{turn}"
        for hop in self.question.hops:
            if hop.doc_id in self._opened:
                continue
            if hop.doc_id in self._listed:
                return self.format_calls([ToolCall("open", {"doc_id": hop.doc_id}, call_id)])
            return self.format_calls([ToolCall("search", {"query": hop.query, "k": DEFAULT_K}, call_id)])
        return self.question.answer
