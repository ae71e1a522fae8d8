"""Templated multi-step word problems (shopping, rates, sharing, saving) with integer answers.

Each template is a short story whose answer takes a fixed number of arithmetic steps; numbers are
drawn so that every intermediate result is a positive integer (divisions are exact). Difficulty picks
templates by step count: easy = 2 steps, medium = 2-3 steps, hard = 3-4 steps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from palaestra.envs.math.problem import Problem, _int, _pick

__all__ = ["TEMPLATES", "word_problem"]

_PEOPLE = (
    ("Maya", "she"), ("Liam", "he"), ("Sofia", "she"), ("Noah", "he"), ("Aisha", "she"), ("Kenji", "he"),
    ("Elena", "she"), ("Omar", "he"), ("Priya", "she"), ("Lucas", "he"), ("Zoe", "she"), ("Mateo", "he"),
)  # fmt: skip
_PRONOUNS = {"she": ("she", "her", "her"), "he": ("he", "his", "him")}
_ITEMS = (  # singular, plural, lowest and highest price in dollars
    ("notebook", "notebooks", 2, 6), ("pen", "pens", 1, 3), ("sandwich", "sandwiches", 4, 9),
    ("book", "books", 8, 20), ("toy car", "toy cars", 3, 12), ("movie ticket", "movie tickets", 6, 15),
    ("cupcake", "cupcakes", 2, 5), ("T-shirt", "T-shirts", 8, 25), ("bag of rice", "bags of rice", 3, 10),
)  # fmt: skip
_GADGETS = ("bike helmet", "video game", "pair of sneakers", "board game", "skateboard", "backpack")


class _Person:
    """A name with its pronouns: `p.he`, `p.He`, `p.his`, `p.him`."""

    def __init__(self, rng: np.random.Generator):
        self.name, key = _PEOPLE[int(rng.integers(len(_PEOPLE)))]
        self.he, self.his, self.him = _PRONOUNS[key]
        self.He = self.he.capitalize()


def _items(rng: np.random.Generator, n: int) -> list[tuple[str, str, int]]:
    """`n` different items as (singular, plural, price)."""
    chosen = rng.choice(len(_ITEMS), size=n, replace=False)
    return [(_ITEMS[i][0], _ITEMS[i][1], _int(rng, _ITEMS[i][2], _ITEMS[i][3])) for i in chosen]


def _recipe(rng: np.random.Generator) -> Problem:
    cups, batch, k = _int(rng, 2, 5), _int(rng, 6, 12), _int(rng, 2, 6)
    question = (
        f"A recipe needs {cups} cups of flour to make {batch} pancakes. "
        f"How many cups of flour are needed to make {batch * k} pancakes?"
    )
    return Problem(
        question, str(cups * k), f"{batch * k} / {batch} = {k} batches; {k} * {cups} = {cups * k} cups."
    )


def _reading(rng: np.random.Generator) -> Problem:
    p, per_day, days, done = _Person(rng), _int(rng, 5, 30), _int(rng, 2, 12), _int(rng, 10, 120)
    total = done + per_day * days
    question = (
        f"A book has {total} pages. {p.name} has already read {done} pages and reads {per_day} pages "
        f"a day. How many more days does {p.he} need to finish the book?"
    )
    solution = f"{total} - {done} = {total - done} pages left; {total - done} / {per_day} = {days} days."
    return Problem(question, str(days), solution)


def _marbles(rng: np.random.Generator) -> Problem:
    p, jars, each, given = _Person(rng), _int(rng, 2, 8), _int(rng, 3, 15), _int(rng, 2, 20)
    total = jars * each + given
    question = (
        f"{p.name} has {total} marbles. {p.He} gives {given} of them to a friend and splits the rest "
        f"equally into {jars} jars. How many marbles go in each jar?"
    )
    return Problem(
        question, str(each), f"{total} - {given} = {total - given}; {total - given} / {jars} = {each}."
    )


def _weekend_pay(rng: np.random.Generator) -> Problem:
    p, wage, sat, sun = _Person(rng), _int(rng, 8, 25), _int(rng, 2, 8), _int(rng, 2, 8)
    question = (
        f"{p.name} earns ${wage} an hour. {p.He} works {sat} hours on Saturday and {sun} hours on "
        f"Sunday. How many dollars does {p.he} earn over the weekend?"
    )
    solution = f"{sat} + {sun} = {sat + sun} hours; {sat + sun} * {wage} = {wage * (sat + sun)} dollars."
    return Problem(question, str(wage * (sat + sun)), solution)


def _change(rng: np.random.Generator) -> Problem:
    p, ((_, plural, price),) = _Person(rng), _items(rng, 1)
    n = _int(rng, 2, 6)
    bill = next(b for b in (10, 20, 50, 100, 200) if b > n * price)
    question = (
        f"{p.name} buys {n} {plural} for ${price} each and pays with a ${bill} bill. "
        f"How many dollars of change does {p.he} get?"
    )
    solution = f"{n} * {price} = {n * price} dollars; {bill} - {n * price} = {bill - n * price} dollars."
    return Problem(question, str(bill - n * price), solution)


def _shopping_total(rng: np.random.Generator) -> Problem:
    p, ((_, pl1, p1), (_, pl2, p2)) = _Person(rng), _items(rng, 2)
    n1, n2 = _int(rng, 2, 7), _int(rng, 2, 7)
    total = n1 * p1 + n2 * p2
    question = (
        f"{p.name} buys {n1} {pl1} for ${p1} each and {n2} {pl2} for ${p2} each. "
        f"How many dollars does {p.he} spend in total?"
    )
    solution = f"{n1} * {p1} = {n1 * p1}; {n2} * {p2} = {n2 * p2}; {n1 * p1} + {n2 * p2} = {total} dollars."
    return Problem(question, str(total), solution)


def _train(rng: np.random.Generator) -> Problem:
    s1, h1, s2, h2 = _int(rng, 6, 16) * 5, _int(rng, 2, 5), _int(rng, 6, 16) * 5, _int(rng, 1, 4)
    total = s1 * h1 + s2 * h2
    question = (
        f"A train travels at {s1} kilometers per hour for {h1} hours, then at {s2} kilometers per hour "
        f"for {h2} more hours. How many kilometers does it travel in total?"
    )
    solution = f"{s1} * {h1} = {s1 * h1} km; {s2} * {h2} = {s2 * h2} km; {s1 * h1} + {s2 * h2} = {total} km."
    return Problem(question, str(total), solution)


def _cookies(rng: np.random.Generator) -> Problem:
    p, trays, per_tray, box = _Person(rng), _int(rng, 2, 6), _int(rng, 8, 24), _int(rng, 4, 8)
    baked = trays * per_tray
    boxes = _int(rng, max(1, baked // box - 6), baked // box - 1)
    given = baked - boxes * box
    question = (
        f"{p.name} bakes {trays} trays with {per_tray} cookies on each tray. {p.He} gives {given} "
        f"cookies to the neighbors and packs the rest into boxes of {box}. How many boxes does {p.he} fill?"
    )
    solution = (
        f"{trays} * {per_tray} = {baked} cookies; {baked} - {given} = {baked - given}; "
        f"{baked - given} / {box} = {boxes} boxes."
    )
    return Problem(question, str(boxes), solution)


def _stickers(rng: np.random.Generator) -> Problem:
    p, packs, per_pack, friends = _Person(rng), _int(rng, 2, 6), _int(rng, 5, 12), _int(rng, 2, 6)
    bought = packs * per_pack
    have = friends * _int(rng, bought // friends + 1, bought // friends + 15) - bought
    total = have + bought
    question = (
        f"{p.name} has {have} stickers and buys {packs} packs with {per_pack} stickers in each. "
        f"{p.He} shares all of {p.his} stickers equally among {friends} friends. "
        f"How many stickers does each friend get?"
    )
    solution = (
        f"{packs} * {per_pack} = {bought}; {have} + {bought} = {total}; "
        f"{total} / {friends} = {total // friends}."
    )
    return Problem(question, str(total // friends), solution)


def _savings(rng: np.random.Generator, gift: bool = False) -> Problem:
    p, weeks, spend = _Person(rng), _int(rng, 3, 12), _int(rng, 5, 20)
    wage = spend + _int(rng, 5, 30)
    saved = (wage - spend) * weeks
    bonus = _int(rng, 2, 10) * 5 if gift else 0
    price = _int(rng, max(1, (saved + bonus) // 3), saved + bonus - 1)
    story = f" Then {p.his} grandmother gives {p.him} ${bonus}." if gift else ""
    question = (
        f"{p.name} earns ${wage} a week and spends ${spend} of it each week. After {weeks} weeks, "
        f"{p.he} saves everything that is left.{story} "
        f"{p.He} then buys a {_pick(rng, _GADGETS)} for ${price}. "
        f"How many dollars does {p.he} have left?"
    )
    steps = [f"{wage} - {spend} = {wage - spend} a week", f"{wage - spend} * {weeks} = {saved}"]
    steps += [f"{saved} + {bonus} = {saved + bonus}"] if gift else []
    steps += [f"{saved + bonus} - {price} = {saved + bonus - price} dollars"]
    return Problem(question, str(saved + bonus - price), "; ".join(steps) + ".")


def _change_two_items(rng: np.random.Generator) -> Problem:
    p, ((_, pl1, p1), (_, pl2, p2)) = _Person(rng), _items(rng, 2)
    n1, n2 = _int(rng, 2, 5), _int(rng, 2, 5)
    total = n1 * p1 + n2 * p2
    bill = next(b for b in (20, 50, 100, 200) if b > total)
    question = (
        f"{p.name} buys {n1} {pl1} at ${p1} each and {n2} {pl2} at ${p2} each, and pays with a "
        f"${bill} bill. How many dollars of change does {p.he} get?"
    )
    solution = (
        f"{n1} * {p1} = {n1 * p1}; {n2} * {p2} = {n2 * p2}; {n1 * p1} + {n2 * p2} = {total}; "
        f"{bill} - {total} = {bill - total} dollars."
    )
    return Problem(question, str(bill - total), solution)


def _fence(rng: np.random.Generator) -> Problem:
    p, length, width, gate, cost = (
        _Person(rng),
        _int(rng, 5, 30),
        _int(rng, 3, 20),
        _int(rng, 1, 3),
        _int(rng, 2, 9),
    )
    fenced = 2 * (length + width) - gate
    question = (
        f"{p.name} puts a fence around a rectangular garden that is {length} meters long and {width} "
        f"meters wide, leaving a {gate}-meter gap for a gate. Fencing costs ${cost} per meter. "
        f"How many dollars does the fencing cost?"
    )
    solution = (
        f"{length} + {width} = {length + width}; 2 * {length + width} = {2 * (length + width)} m around; "
        f"{2 * (length + width)} - {gate} = {fenced} m of fence; {fenced} * {cost} = {fenced * cost} dollars."
    )
    return Problem(question, str(fenced * cost), solution)


def _bake_sale(rng: np.random.Generator) -> Problem:
    p, cakes, cake_price, cookies, cookie_price = (
        _Person(rng),
        _int(rng, 10, 40),
        _int(rng, 2, 5),
        _int(rng, 10, 60),
        _int(rng, 1, 2),
    )
    income = cakes * cake_price + cookies * cookie_price
    costs = _int(rng, income // 5, income // 2)
    question = (
        f"At a bake sale, {p.name} sells {cakes} cupcakes for ${cake_price} each and {cookies} cookies "
        f"for ${cookie_price} each. The ingredients cost {p.him} ${costs}. How many dollars of profit does "
        f"{p.he} make?"
    )
    solution = (
        f"{cakes} * {cake_price} = {cakes * cake_price}; "
        f"{cookies} * {cookie_price} = {cookies * cookie_price}; "
        f"{cakes * cake_price} + {cookies * cookie_price} = {income}; "
        f"{income} - {costs} = {income - costs} dollars."
    )
    return Problem(question, str(income - costs), solution)


TEMPLATES: dict[str, tuple[int, Callable[[np.random.Generator], Problem]]] = {
    "recipe": (2, _recipe),
    "reading": (2, _reading),
    "marbles": (2, _marbles),
    "weekend_pay": (2, _weekend_pay),
    "change": (2, _change),
    "shopping_total": (3, _shopping_total),
    "train": (3, _train),
    "cookies": (3, _cookies),
    "stickers": (3, _stickers),
    "savings": (3, _savings),
    "change_two_items": (4, _change_two_items),
    "savings_gift": (4, lambda rng: _savings(rng, gift=True)),
    "fence": (4, _fence),
    "bake_sale": (4, _bake_sale),
}
"""Template name -> (number of arithmetic steps, function(rng) -> Problem)."""

_STEPS = {"easy": (2,), "medium": (2, 3), "hard": (3, 4)}


def word_problem(rng: np.random.Generator, difficulty: str = "medium") -> Problem:
    """A word problem whose step count fits the difficulty (easy 2, medium 2-3, hard 3-4 steps)."""
    names = [name for name, (steps, _) in TEMPLATES.items() if steps in _STEPS[difficulty]]
    return TEMPLATES[_pick(rng, names)][1](rng)
