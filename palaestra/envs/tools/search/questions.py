"""Questions over a world: chains of relations from a named entity, and comparisons.

    level 1   one hop:    "In which city was Tavik Orunel born?"
    level 2   two hops:   "In which country is the city where Tavik Orunel was born?"
    level 3   three hops: "Who is the mayor of the city where the company Tavik Orunel works for has its
                          headquarters?", or a comparison of two two-hop chains: "Which company was founded
                          earlier: the company Tavik Orunel works for or the company Mira Kesh works for?"

Relations are functions, so every question has exactly one answer (an entity's name or a number); the
entities of a chain are all distinct, so the answer never appears in the question. Each hop names the
document that states its fact (the supporting documents) and the search query an expert would type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from palaestra.envs.tools.search.documents import Corpus
from palaestra.envs.tools.search.world import Entity, World

__all__ = ["LEVELS", "Hop", "Question", "draw_question"]

LEVELS = (1, 2, 3)


class _Relation(NamedTuple):
    target: str
    phrase: str  # the target as a noun phrase about {x}
    question: str  # a question whose answer is the target
    words: str  # search words that find the fact in {x}'s document


_RELATIONS: dict[tuple[str, str], _Relation] = {
    ("person", "birthplace"): _Relation(
        "city", "the birthplace of {x}", "In which city was {x} born?", "born"
    ),
    ("person", "employer"): _Relation(
        "company", "the company {x} works for", "Which company does {x} work for?", "works employed"
    ),
    ("person", "alma_mater"): _Relation(
        "university", "the alma mater of {x}", "Which university did {x} attend?", "studied graduate attended"
    ),
    ("city", "country"): _Relation(
        "country", "the country {x} lies in", "In which country is {x}?", "city in"
    ),
    ("city", "river"): _Relation(
        "river", "the river that flows through {x}", "Which river flows through {x}?", "river flows"
    ),
    ("city", "mayor"): _Relation("person", "the mayor of {x}", "Who is the mayor of {x}?", "mayor"),
    ("country", "capital"): _Relation("city", "the capital of {x}", "What is the capital of {x}?", "capital"),
    ("river", "source"): _Relation(
        "country", "the country where {x} rises", "In which country does {x} rise?", "rises source"
    ),
    ("company", "hq"): _Relation(
        "city",
        "the city where {x} has its headquarters",
        "In which city is {x} headquartered?",
        "headquartered headquarters",
    ),
    ("company", "founder"): _Relation("person", "the founder of {x}", "Who founded {x}?", "founded"),
    ("company", "ceo"): _Relation(
        "person", "the chief executive of {x}", "Who is the chief executive of {x}?", "chief executive"
    ),
    ("university", "city"): _Relation(
        "city", "the city {x} is in", "In which city is {x}?", "university city"
    ),
    ("university", "rector"): _Relation("person", "the rector of {x}", "Who is the rector of {x}?", "rector"),
}

_FACTS: dict[tuple[str, str], tuple[str, str]] = {
    ("person", "birth_year"): ("In what year was {x} born?", "born"),
    ("city", "population"): ("What is the population of {x}?", "population people live"),
    ("city", "founded"): ("In what year was {x} founded?", "founded"),
    ("country", "population"): ("What is the population of {x}?", "population people live"),
    ("country", "founded"): ("In what year did {x} become independent?", "independent"),
    ("country", "currency"): ("What is the currency of {x}?", "currency"),
    ("river", "length"): ("How long is {x}, in kilometres?", "kilometres long"),
    ("company", "founded"): ("In what year was {x} founded?", "founded"),
    ("company", "employees"): ("How many people does {x} employ?", "employs employees"),
    ("university", "founded"): ("In what year was {x} founded?", "founded"),
    ("university", "students"): ("How many students does {x} have?", "students"),
}
"""(kind, fact) -> (a question whose answer is the fact, search words that find it)."""

_COMPARISONS: dict[tuple[str, str], tuple[str, bool]] = {
    ("person", "birth_year"): ("Who was born earlier", False),
    ("city", "population"): ("Which city has more inhabitants", True),
    ("city", "founded"): ("Which city was founded earlier", False),
    ("company", "founded"): ("Which company was founded earlier", False),
    ("company", "employees"): ("Which company has more employees", True),
    ("university", "students"): ("Which university has more students", True),
    ("country", "population"): ("Which country has more inhabitants", True),
    ("river", "length"): ("Which river is longer", True),
}
"""(kind, fact) -> (the question's opening, whether the larger value wins)."""

_CHAIN_STARTS = {
    "person": 0.4,
    "company": 0.2,
    "city": 0.2,
    "university": 0.1,
    "river": 0.05,
    "country": 0.05,
}
"""How often a chain starts at each kind of entity."""


@dataclass(frozen=True)
class Hop:
    """One fact to look up: the document stating it and the query an expert searches for it."""

    doc_id: str
    query: str


@dataclass(frozen=True)
class Question:
    """A question, its one exact answer, and the hops (supporting documents, in order) that lead there.

    Attributes:
        key: a stable id of the question within its world ("person:17/birthplace/country").
    """

    text: str
    answer: str
    hops: tuple[Hop, ...]
    key: str

    @property
    def supporting_docs(self) -> tuple[str, ...]:
        return tuple(hop.doc_id for hop in self.hops)


def _pick(rng: np.random.Generator, items: list[str] | tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def _chain(world: World, rng: np.random.Generator, hops: int) -> tuple[list[Entity], list[str]] | None:
    """A walk of `hops` steps (relations, the last may be a fact) through distinct entities, or None."""
    kind = str(rng.choice(list(_CHAIN_STARTS), p=list(_CHAIN_STARTS.values())))
    group = world.of_kind(kind)
    entity = group[int(rng.integers(len(group)))]
    path, steps = [entity], []
    for step in range(hops):
        options = [r for r in sorted(entity.relations) if (entity.kind, r) in _RELATIONS]
        options = [r for r in options if world.related(entity, r) not in path]
        if step == hops - 1:
            options += [f for f in sorted(entity.facts) if (entity.kind, f) in _FACTS]
        if not options:
            return None
        steps.append(_pick(rng, options))
        if steps[-1] in entity.relations:
            entity = world.related(entity, steps[-1])
            path.append(entity)
    return path, steps


def _phrase(start: Entity, path: list[Entity], steps: list[str]) -> str:
    """The noun phrase of `start` followed along `steps` (all but the last step)."""
    text = start.mention
    for entity, step in zip(path, steps, strict=False):
        text = _RELATIONS[entity.kind, step].phrase.format(x=text)
    return text


def _query(entity: Entity, step: str) -> str:
    words = _RELATIONS[entity.kind, step].words if step in entity.relations else _FACTS[entity.kind, step][1]
    return f"{entity.mention.removeprefix('the ')} {words}"


def _chain_question(corpus: Corpus, rng: np.random.Generator, hops: int) -> Question | None:
    world = corpus.world
    found = _chain(world, rng, hops)
    if found is None:
        return None
    path, steps = found
    last, step = path[hops - 1], steps[-1]
    inner = _phrase(path[0], path, steps[:-1])
    if step in last.relations:
        text, answer = _RELATIONS[last.kind, step].question, world.related(last, step).name
    else:
        text, answer = _FACTS[last.kind, step][0], str(last.facts[step])
    chain = [(entity, s) for entity, s in zip(path, steps, strict=False)]
    return Question(
        text=_capitalise(text.format(x=inner)),
        answer=answer,
        hops=tuple(Hop(corpus.doc_of(e.key).doc_id, _query(e, s)) for e, s in chain),
        key="/".join([path[0].key, *steps]),
    )


def _comparison_question(corpus: Corpus, rng: np.random.Generator) -> Question | None:
    """Compare a fact of two entities, each one relation away from a named entity (4 documents)."""
    world = corpus.world
    kind, fact = list(_COMPARISONS)[int(rng.integers(len(_COMPARISONS)))]
    relations = [key for key, rel in _RELATIONS.items() if rel.target == kind]
    start_kind, relation = relations[int(rng.integers(len(relations)))]
    group = [e for e in world.of_kind(start_kind) if relation in e.relations]
    a, b = (group[int(i)] for i in rng.choice(len(group), size=2, replace=False))
    ta, tb = world.related(a, relation), world.related(b, relation)
    if len({a.key, b.key, ta.key, tb.key}) < 4 or ta.facts[fact] == tb.facts[fact]:
        return None
    opening, larger_wins = _COMPARISONS[kind, fact]
    winner = ta if (int(ta.facts[fact]) > int(tb.facts[fact])) == larger_wins else tb
    phrase = _RELATIONS[start_kind, relation].phrase
    text = f"{opening}: {phrase.format(x=a.mention)} or {phrase.format(x=b.mention)}?"
    chain = [(a, relation), (b, relation), (ta, fact), (tb, fact)]
    return Question(
        text=text,
        answer=winner.name,
        hops=tuple(Hop(corpus.doc_of(e.key).doc_id, _query(e, s)) for e, s in chain),
        key=f"{a.key}|{b.key}/{relation}/{fact}",
    )


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def draw_question(corpus: Corpus, level: int, rng: np.random.Generator) -> Question:
    """A question of `level` (1, 2 or 3 hops; a third of level 3 are comparisons), drawn with `rng`."""
    if level not in LEVELS:
        raise ValueError(f"level={level!r}; choose one of {LEVELS}")
    while True:  # a draw fails rarely (a walk back to an entity already on the chain); draw again
        if level == 3 and rng.random() < 1 / 3:
            question = _comparison_question(corpus, rng)
        else:
            question = _chain_question(corpus, rng, level)
        if question is not None:
            return question
