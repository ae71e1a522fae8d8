"""The documents of a world: one per entity, written from varied templates.

Each document states several facts about its entity, each fact in one of a few paraphrases, and
names related entities (a city lists companies based there; a near-twin name gets a "not to be
confused with" line), so a search for one name also finds documents about others. Documents get
shuffled ids ("D00417"), so an id says nothing about the entity's kind.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from palaestra.envs.tools.search.world import Entity, World, make_world

__all__ = ["Corpus", "Document", "make_corpus"]


@dataclass(frozen=True)
class Document:
    """One document: its id, its title (the entity's name) and its text."""

    doc_id: str
    title: str
    text: str
    entity: str
    """The key of the entity it is about."""


@dataclass(frozen=True)
class Corpus:
    """A world and its documents (in id order)."""

    world: World
    documents: tuple[Document, ...]
    _by_entity: dict[str, Document] = field(init=False, repr=False, compare=False)
    _by_id: dict[str, Document] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # lookups, built once (frozen: set through object)
        object.__setattr__(self, "_by_entity", {doc.entity: doc for doc in self.documents})
        object.__setattr__(self, "_by_id", {doc.doc_id: doc for doc in self.documents})

    def doc_of(self, entity_key: str) -> Document:
        """The document about an entity."""
        return self._by_entity[entity_key]

    def get(self, doc_id: str) -> Document | None:
        """The document with this id, or None."""
        return self._by_id.get(doc_id)


# {n}: the entity's name, {s}: a short name (a person's surname), other fields: the fact's values.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "person.intro": (
        "{n} is {a_occupation}.",
        "{n} is {a_occupation} by training.",
        "{n} works as {a_occupation}.",
    ),
    "person.birth": (
        "{n} was born in {birthplace} in {birth_year}.",
        "Born in {birth_year} in the city of {birthplace}, {s} grew up there.",
        "{s} was born in {birth_year}; the family lived in {birthplace} at the time.",
    ),
    "person.employer": (
        "{s} works for {employer}.",
        "{n} is employed by {employer}.",
        "{s} has spent most of a career at {employer}.",
    ),
    "person.alma_mater": (
        "{s} studied at {alma_mater}.",
        "{n} is a graduate of {alma_mater}.",
        "After school, {s} attended {alma_mater}.",
    ),
    "person.founder": ("{s} founded {employer}.", "{n} is the founder of {employer}."),
    "person.ceo": (
        "{s} is the chief executive of {employer}.",
        "{n} runs {employer} as its chief executive.",
    ),
    "person.mayor": ("{s} is the mayor of {office}.", "{n} serves as mayor of {office}."),
    "person.rector": ("{s} is the rector of {office}.", "{n} leads {office} as its rector."),
    "city.intro": (
        "{n} is a city in {country}.",
        "{n} lies in {country}.",
        "The city of {n} is in {country}.",
    ),
    "city.capital": ("{n} is the capital of {country}.", "{n} serves as the capital of {country}."),
    "city.population": ("{n} has a population of {population:,}.", "{population:,} people live in {n}."),
    "city.founded": ("{n} was founded in {founded}.", "The city dates from {founded}, when it was founded."),
    "city.river": ("The {river} river flows through {n}.", "{n} stands on the banks of the {river} river."),
    "city.mayor": ("The mayor of {n} is {mayor}.", "{mayor} is the city's mayor."),
    "country.intro": ("{n} is a country.", "{n} is a sovereign state."),
    "country.capital": ("The capital of {n} is {capital}.", "{capital} is the capital city of {n}."),
    "country.population": ("{n} has a population of {population:,}.", "{population:,} people live in {n}."),
    "country.founded": ("{n} became independent in {founded}.", "{n} has been independent since {founded}."),
    "country.currency": (
        "The currency of {n} is the {currency}.",
        "{n} pays in its own currency, the {currency}.",
    ),
    "river.intro": (
        "The {n} is a river {length:,} kilometres long.",
        "The {n} river runs for {length:,} kilometres.",
    ),
    "river.source": ("The {n} rises in {source}.", "The source of the {n} river lies in {source}."),
    "company.intro": ("{n} is a {industry} company.", "{n} is a firm in the {industry} business."),
    "company.hq": ("{n} is headquartered in {hq}.", "The headquarters of {n} are in {hq}."),
    "company.founder": ("{n} was founded in {founded} by {founder}.", "{founder} founded {n} in {founded}."),
    "company.ceo": ("Its chief executive is {ceo}.", "{ceo} is the chief executive of {n}."),
    "company.employees": ("{n} employs {employees:,} people.", "The company has {employees:,} employees."),
    "university.intro": ("{n} is a university in {city}.", "{n} is located in the city of {city}."),
    "university.founded": ("{n} was founded in {founded}.", "{n} opened its doors in {founded}."),
    "university.rector": ("The rector of {n} is {rector}.", "{rector} is the rector of {n}."),
    "university.students": ("{n} has {students:,} students.", "{students:,} students are enrolled at {n}."),
}

_FACTS = {
    "person": ("birth", "employer", "alma_mater"),
    "city": ("population", "founded", "river", "mayor"),
    "country": ("capital", "population", "founded", "currency"),
    "river": ("source",),
    "company": ("hq", "founder", "ceo", "employees"),
    "university": ("founded", "rector", "students"),
}
"""The facts a document states after its intro, shuffled per document."""


def _fields(world: World, entity: Entity) -> dict[str, object]:
    related = {rel: world.entities[key] for rel, key in entity.relations.items()}
    names = {rel: e.name if e.kind == "river" else e.mention for rel, e in related.items()}
    short = entity.name.split()[-1] if entity.kind == "person" else entity.name
    occupation = entity.facts.get("occupation", "")
    article = "an" if str(occupation)[:1] in tuple("aeiou") else "a"
    return {"n": entity.name, "s": short, **entity.facts, "a_occupation": f"{article} {occupation}", **names}


def _sentence(rng: random.Random, slot: str, fields: dict[str, object]) -> str:
    return rng.choice(_TEMPLATES[slot]).format(**fields)


def _write(rng: random.Random, world: World, entity: Entity, mentions: dict[str, list[str]]) -> str:
    fields = _fields(world, entity)
    kind = entity.kind
    facts = [fact for fact in _FACTS[kind] if fact != "employer" or "employer" in entity.relations]
    rng.shuffle(facts)
    sentences = [_sentence(rng, f"{kind}.intro", fields)]
    if kind == "person" and "role" in entity.facts:
        facts.insert(rng.randrange(len(facts) + 1), str(entity.facts["role"]))
    if kind == "city" and world.related(world.related(entity, "country"), "capital") is entity:
        sentences.append(_sentence(rng, "city.capital", fields))
    sentences += [_sentence(rng, f"{kind}.{fact}", fields) for fact in facts]
    if mentions.get(entity.key):
        listed = mentions[entity.key][:4]
        sentences.append(
            f"{_SEE_ALSO[kind]} {', '.join(listed[:-1]) + ' and ' if len(listed) > 1 else ''}{listed[-1]}."
        )
    if entity.twin is not None:
        twin = world.entities[entity.twin]
        which = "another" if twin.kind == kind else "a"
        sentences.append(f"Not to be confused with {twin.mention}, {which} {twin.kind}.")
    return " ".join(sentences)


_SEE_ALSO = {
    "city": "Companies based here include",
    "country": "Rivers that rise here include",
    "river": "Cities on its banks include",
    "company": "Its staff include",
    "university": "Its graduates include",
}


def _mentions(world: World) -> dict[str, list[str]]:
    """Entity key -> names of other entities its document lists (the inverse of some relations)."""
    out: dict[str, list[str]] = defaultdict(list)
    for entity in world.entities.values():
        if entity.kind == "company":
            out[entity.relations["hq"]].append(entity.name)
        elif entity.kind == "river":
            out[entity.relations["source"]].append(f"the {entity.name}")
        elif entity.kind == "city":
            out[entity.relations["river"]].append(entity.name)
        elif entity.kind == "person" and "role" not in entity.facts:
            out[entity.relations["employer"]].append(entity.name)
            out[entity.relations["alma_mater"]].append(entity.name)
    return out


@lru_cache(maxsize=4)
def make_corpus(world_seed: int) -> Corpus:
    """The documents of world `world_seed` (cached per process)."""
    world = make_world(world_seed)
    rng = random.Random(f"palaestra-search-docs-{world_seed}")
    mentions = _mentions(world)
    entities = list(world.entities.values())
    order = rng.sample(range(len(entities)), len(entities))
    documents = []
    for number, index in enumerate(order):
        entity = entities[index]
        title = f"{entity.name} (river)" if entity.kind == "river" else entity.name
        documents.append(Document(f"D{number:05d}", title, _write(rng, world, entity, mentions), entity.key))
    return Corpus(world, tuple(documents))
