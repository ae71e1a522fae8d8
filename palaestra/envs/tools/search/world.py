"""A generated world: invented entities, the relations between them and their numeric facts.

Everything comes from one seed, with invented syllable-built names, so no fact can be recalled from
pretraining. Six kinds of entity: countries, cities, rivers, companies, universities and people.
Every relation is a function (a person has one birthplace, a company one founder), so a chain of
relations from a named entity leads to exactly one answer.

    person      birthplace -> city, employer -> company, alma_mater -> university; birth_year
    city        country -> country, river -> river, mayor -> person; population, founded
    country     capital -> city; population, founded, currency
    river       source -> country; length
    company     hq -> city, founder -> person, ceo -> person; founded, employees
    university  city -> city, rector -> person; founded, students

Some names are near twins of others (one syllable apart) and many people share a surname: the
distractors a reader must tell apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["SIZES", "Entity", "World", "make_world"]

SIZES = {"country": 20, "river": 40, "city": 200, "university": 50, "company": 300, "person": 1800}
"""Entities of each kind in a world (about 2,400 documents, one per entity)."""

_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "st", "th")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "th", "m", "k", "nd")
_COMPANY_SUFFIXES = ("Works", "Holdings", "Group", "Industries", "Company", "Partners", "Trading", "Brothers")
_UNIVERSITY_FORMS = ("University of {}", "{} Institute", "{} College", "{} Polytechnic")
OCCUPATIONS = ("engineer", "painter", "chemist", "architect", "lawyer", "surgeon", "teacher", "pilot")
INDUSTRIES = ("shipping", "textile", "mining", "software", "brewing", "printing", "rail", "timber")


@dataclass
class Entity:
    """One invented entity (read-only once `make_world` returns it).

    Attributes:
        key: unique key, "<kind>:<index>" (e.g. "person:17").
        kind: country, city, river, company, university or person.
        name: its invented name ("Tavik Orunel", "Velmora Dynamics").
        relations: relation -> the key of the entity it points to.
        facts: numbers (years, counts) and words (currency, occupation) about it.
        twin: the key of an entity with a near-identical name, if any (a distractor).
    """

    key: str
    kind: str
    name: str
    relations: dict[str, str] = field(default_factory=dict)
    facts: dict[str, int | str] = field(default_factory=dict)
    twin: str | None = None

    @property
    def mention(self) -> str:
        """How a sentence names it: "the Ossel river", "the University of Kesh", else its name."""
        if self.kind == "river":
            return f"the {self.name} river"
        return f"the {self.name}" if self.name.startswith("University of") else self.name


@dataclass(frozen=True)
class World:
    """All entities of one seed, by key (insertion order is generation order)."""

    seed: int
    entities: dict[str, Entity]

    def of_kind(self, kind: str) -> list[Entity]:
        return [e for e in self.entities.values() if e.kind == kind]

    def related(self, entity: Entity, relation: str) -> Entity:
        return self.entities[entity.relations[relation]]


class _Names:
    """Unique syllable-built words; some are near twins of earlier ones (the last syllable differs)."""

    def __init__(self, rng: random.Random):
        self.rng, self.used, self.words = rng, set[str](), list[tuple[str, ...]]()

    def _syllable(self) -> str:
        return self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS)

    def word(self, twin_rate: float = 0.0) -> tuple[str, str | None]:
        """A new word, and the earlier word it is a near twin of (or None)."""
        while True:
            twin_of = None
            if self.words and self.rng.random() < twin_rate:
                twin_of = self.rng.choice(self.words)
                parts = (*twin_of[:-2], self._syllable(), self.rng.choice(_CODAS))
            else:
                parts = (
                    *(self._syllable() for _ in range(self.rng.choice((2, 2, 3)))),
                    self.rng.choice(_CODAS),
                )
            word = "".join(parts).capitalize()
            if len(word) >= 4 and word.lower() not in self.used:
                self.used.add(word.lower())
                self.words.append(parts)
                return word, None if twin_of is None else "".join(twin_of).capitalize()


@lru_cache(maxsize=4)
def make_world(seed: int) -> World:
    """The world of `seed` (the same seed gives the same world in every process and Python run)."""
    rng = random.Random(f"palaestra-search-world-{seed}")
    names = _Names(rng)
    entities: dict[str, Entity] = {}
    by_word: dict[str, str] = {}  # a name's invented word -> its entity's key (to find twins)

    def add(kind: str, form: str = "{}", **facts: int | str) -> Entity:
        word, twin_of = names.word(twin_rate=0.15)
        key = f"{kind}:{sum(e.kind == kind for e in entities.values())}"
        entity = Entity(key, kind, form.format(word), facts=dict(facts), twin=by_word.get(twin_of or ""))
        by_word[word] = entities.setdefault(key, entity).key
        return entity

    n, num = SIZES, rng.randrange
    countries = [
        add(
            "country",
            population=num(800_000, 90_000_000),
            founded=num(1500, 1990),
            currency=names.word()[0].lower(),
        )
        for _ in range(n["country"])
    ]
    rivers = [add("river", length=num(40, 3500)) for _ in range(n["river"])]
    cities = [add("city", population=num(5_000, 4_000_000), founded=num(700, 1950)) for _ in range(n["city"])]
    universities = [
        add("university", rng.choice(_UNIVERSITY_FORMS), founded=num(1300, 1990), students=num(900, 60_000))
        for _ in range(n["university"])
    ]
    companies = [
        add(
            "company",
            "{} " + rng.choice(_COMPANY_SUFFIXES),
            founded=num(1800, 2020),
            employees=num(12, 250_000),
            industry=rng.choice(INDUSTRIES),
        )
        for _ in range(n["company"])
    ]
    people = _people(rng, names, n["person"])
    entities.update((person.key, person) for person in people)

    for i, city in enumerate(cities):
        city.relations.update(country=countries[i % len(countries)].key, river=rng.choice(rivers).key)
    for i, country in enumerate(countries):
        country.relations["capital"] = cities[i].key  # cities[i] lies in countries[i] (i < #countries)
    for river in rivers:
        river.relations["source"] = rng.choice(countries).key
    for university in universities:
        university.relations["city"] = rng.choice(cities).key
    for company in companies:
        company.relations["hq"] = rng.choice(cities).key
    # Roles: each person holds at most one (founder, chief executive, mayor or rector).
    holders = iter(rng.sample(people, len(people)))
    for company in companies:
        for role in ("founder", "ceo"):
            person = next(holders)
            company.relations[role] = person.key
            person.relations["employer"] = company.key
            person.facts["role"] = role
    for office, places in (("mayor", cities), ("rector", universities)):
        for place in places:
            person = next(holders)
            place.relations[office] = person.key
            person.relations["office"] = place.key
            person.facts["role"] = office
    for person in people:
        person.relations.update(birthplace=rng.choice(cities).key, alma_mater=rng.choice(universities).key)
        if "role" not in person.facts:
            person.relations["employer"] = rng.choice(companies).key
    return World(seed, entities)


def _people(rng: random.Random, names: _Names, count: int) -> list[Entity]:
    """`count` people with unique full names; people who share a surname are each other's twins."""
    surnames = [names.word(twin_rate=0.1)[0] for _ in range(count // 3)]
    firsts = [names.word()[0] for _ in range(count // 6)]
    people: list[Entity] = []
    taken: set[str] = set()
    family: dict[str, str] = {}  # surname -> the first person with it (the twin of later ones)
    while len(people) < count:
        name = f"{rng.choice(firsts)} {rng.choice(surnames)}"
        if name in taken:
            continue
        taken.add(name)
        key = f"person:{len(people)}"
        twin = family.setdefault(name.split()[1], key)
        facts: dict[str, int | str] = {
            "birth_year": rng.randrange(1925, 2000),
            "occupation": rng.choice(OCCUPATIONS),
        }
        people.append(Entity(key, "person", name, facts=facts, twin=None if twin == key else twin))
    return people
