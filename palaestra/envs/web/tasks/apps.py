"""Application-like task families: search, tabs, tables, dates, an inbox and a shop.

Each page is a small single-document app (views swapped in JS). Generators draw names, values,
orders and distractors from the env's seeded generator; the page scripts in `static/tasks/` hold the
success check, the dense progress signal and the live-DOM expert.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from palaestra.envs.web.tasks.base import TaskInstance, pick, web_task
from palaestra.envs.web.tasks.vocab import (
    CITIES,
    COLORS,
    DEPARTMENTS,
    DOC_KINDS,
    EMAIL_SUBJECTS,
    FIRST_NAMES,
    LAST_NAMES,
    PRODUCT_NOUNS,
    REPLY_TEXTS,
    SHOP_CATEGORIES,
    STREET_KINDS,
    TAB_NAMES,
    VERBS,
    WORDS,
)

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _int(rng: np.random.Generator, low: int, high: int) -> int:
    """A uniform integer in [low, high] (both ends included)."""
    return int(rng.integers(low, high + 1))


def _unique(
    rng: np.random.Generator,
    make: Callable[[np.random.Generator], str],
    n: int,
    taken: set[str] | None = None,
) -> list[str]:
    """`n` distinct strings drawn by calling `make(rng)` (skipping those in `taken`)."""
    seen = set(taken or ())
    out: list[str] = []
    while len(out) < n:
        value = make(rng)
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def _person(rng: np.random.Generator) -> str:
    return f"{pick(rng, FIRST_NAMES)} {pick(rng, LAST_NAMES)}"


def _search_items(rng: np.random.Generator, kind: str, n: int) -> tuple[list[dict[str, str]], int]:
    """`n` items of `kind` (people, products or documents) and the index of the target among them.

    Several distractors share a word with the target (same first name, same product noun, same
    document kind), so a sloppy query shows more than one match.
    """
    if kind == "people":
        target = _person(rng)
        first, last = target.split()
        similar = [f"{first} {x}" for x in pick(rng, LAST_NAMES, 4) if x != last][:3]
        similar += [f"{x} {last}" for x in pick(rng, FIRST_NAMES, 3) if x != first][:2]
        names = [target, *similar]
        names += _unique(rng, _person, n - len(names), set(names))
        metas = [f"{pick(rng, DEPARTMENTS)} · {pick(rng, CITIES)}" for _ in names]
    elif kind == "products":
        noun = pick(rng, PRODUCT_NOUNS)
        target = f"{pick(rng, WORDS).title()} {noun}"
        similar = [f"{w.title()} {noun}" for w in pick(rng, WORDS, 4)]
        names = list(dict.fromkeys([target, *similar]))

        def product(r: np.random.Generator) -> str:
            return f"{pick(r, WORDS).title()} {pick(r, PRODUCT_NOUNS)}"

        names += _unique(rng, product, n - len(names), set(names))
        metas = [f"${_int(rng, 5, 199)}.{_int(rng, 0, 99):02d}" for _ in names]
    else:
        doc = pick(rng, DOC_KINDS)
        target = f"{pick(rng, WORDS).title()} {doc} {_int(rng, 2019, 2026)}"
        similar = [f"{target.rsplit(' ', 1)[0]} {y}" for y in range(2019, 2027)]
        similar = [s for s in similar if s != target][:2] + [
            f"{w.title()} {doc} 2024" for w in pick(rng, WORDS, 2)
        ]
        names = list(dict.fromkeys([target, *similar]))

        def document(r: np.random.Generator) -> str:
            return f"{pick(r, WORDS).title()} {pick(r, DOC_KINDS)} {_int(r, 2019, 2026)}"

        names += _unique(rng, document, n - len(names), set(names))
        metas = [f"Edited by {_person(rng)}" for _ in names]
    order = [int(i) for i in rng.permutation(n)]
    items = [{"name": names[i], "meta": metas[i]} for i in order]
    return items, order.index(0)


@web_task(
    "SearchOpen",
    script="search_open",
    description="search a list of people, products or documents and open the named item",
    max_steps=5,
)
def search_open(rng: np.random.Generator) -> TaskInstance:
    kind = pick(rng, ["people", "products", "documents"])
    items, target = _search_items(rng, kind, _int(rng, 20, 40))
    shown = _int(rng, 5, 7)
    if target < shown:  # the target never starts on the first, unfiltered page
        swap = _int(rng, shown, len(items) - 1)
        items[target], items[swap] = items[swap], items[target]
        target = swap
    name = items[target]["name"]
    noun = {"people": "person", "products": "product", "documents": "document"}[kind]
    return TaskInstance(
        f'Find the {noun} "{name}" and open it.',
        {"kind": kind, "items": items, "target": name, "shown": shown, "offset": _int(rng, 0, 60)},
    )


@web_task(
    "NavigateTabs",
    script="navigate_tabs",
    description="switch to the named tab of a tabbed page and click the named button in it",
    max_steps=4,
)
def navigate_tabs(rng: np.random.Generator) -> TaskInstance:
    tabs = pick(rng, TAB_NAMES, _int(rng, 3, 5))
    panels = [pick(rng, VERBS, _int(rng, 3, 6)) for _ in tabs]
    target_tab = _int(rng, 1, len(tabs) - 1)  # never the tab shown first
    button = pick(rng, panels[target_tab])
    for i, labels in enumerate(panels):  # the same label elsewhere, so the tab matters
        if i != target_tab and button not in labels and rng.random() < 0.6:
            labels[_int(rng, 0, len(labels) - 1)] = button
    return TaskInstance(
        f'Go to the "{tabs[target_tab]}" tab and click "{button}" there.',
        {
            "tabs": tabs,
            "panels": panels,
            "target_tab": target_tab,
            "button": button,
            "title": pick(rng, ["Workspace", "Account", "Dashboard", "Project", "Admin"]),
            "offset": _int(rng, 0, 40),
        },
    )


def _table(rng: np.random.Generator) -> tuple[list[str], list[list[str]]]:
    """A people or products table: a name column first, then 2-4 value columns."""
    n_rows = _int(rng, 5, 10)
    if rng.random() < 0.5:
        names = _unique(rng, _person, n_rows)
        columns = {
            "Age": lambda: str(_int(rng, 19, 70)),
            "City": lambda: pick(rng, CITIES),
            "Department": lambda: pick(rng, DEPARTMENTS),
            "Salary": lambda: f"${_int(rng, 30, 180)},{_int(rng, 0, 9)}00",
            "Years": lambda: str(_int(rng, 0, 30)),
        }
        head = "Name"
    else:

        def product(r: np.random.Generator) -> str:
            return f"{pick(r, WORDS).title()} {pick(r, PRODUCT_NOUNS)}"

        names = _unique(rng, product, n_rows)
        columns = {
            "Price": lambda: f"${_int(rng, 3, 250)}.{_int(rng, 0, 99):02d}",
            "Stock": lambda: str(_int(rng, 0, 500)),
            "Rating": lambda: f"{_int(rng, 10, 50) / 10:.1f}",
            "Category": lambda: pick(rng, SHOP_CATEGORIES),
            "Color": lambda: pick(rng, COLORS),
        }
        head = "Product"
    chosen = pick(rng, list(columns), _int(rng, 2, 4))
    rows = [[name, *(columns[c]() for c in chosen)] for name in names]
    return [head, *chosen], rows


@web_task(
    "ReadTable",
    script="read_table",
    description="read one cell of a table and type it into an answer field",
    max_steps=4,
)
def read_table(rng: np.random.Generator) -> TaskInstance:
    header, rows = _table(rng)
    row, col = _int(rng, 0, len(rows) - 1), _int(rng, 1, len(header) - 1)
    return TaskInstance(
        f'What is the {header[col].lower()} of "{rows[row][0]}"? Type the answer and submit it.',
        {"header": header, "rows": rows, "answer": rows[row][col], "offset": _int(rng, 0, 40)},
    )


@web_task(
    "ChooseDate",
    script="choose_date",
    description="pick a date in a calendar pop-up (changing months if needed) and submit",
    max_steps=8,
)
def choose_date(rng: np.random.Generator) -> TaskInstance:
    year, month = _int(rng, 2020, 2028), _int(rng, 0, 11)
    shift = int(pick(rng, [-2, -1, 0, 0, 1, 1, 2, 3]))
    t_year, t_month = year + (month + shift) // 12, (month + shift) % 12
    days = [31, 29 if t_year % 4 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][t_month]
    day = _int(rng, 1, days)
    return TaskInstance(
        f"Select {MONTHS[t_month]} {day}, {t_year} in the date picker and submit.",
        {
            "start": [year, month],
            "target": [t_year, t_month, day],
            "label": pick(rng, ["Date", "Start date", "Due date", "Check-in", "Delivery date"]),
            "offset": _int(rng, 0, 60),
        },
    )


@web_task(
    "ReplyEmail",
    script="reply_email",
    description="open the named email in an inbox, reply with the given text and send it",
    max_steps=6,
)
def reply_email(rng: np.random.Generator) -> TaskInstance:
    n = _int(rng, 4, 8)
    senders = _unique(rng, _person, 3)
    subjects = pick(rng, EMAIL_SUBJECTS, 3)
    # the target, the same sender on another subject, another sender on the same subject
    mails = [(senders[0], subjects[0]), (senders[0], subjects[1]), (senders[1], subjects[0])]
    while len(mails) < n:
        mail = (_person(rng), pick(rng, EMAIL_SUBJECTS))
        if mail not in mails:
            mails.append(mail)
    order = [int(i) for i in rng.permutation(n)]
    emails = [
        {
            "id": k,
            "sender": mails[i][0],
            "subject": mails[i][1],
            "body": f"Hi, a note about {mails[i][1].lower()}: {' '.join(pick(rng, WORDS, 6))}.",
        }
        for k, i in enumerate(order)
    ]
    text = pick(rng, REPLY_TEXTS)
    return TaskInstance(
        f'Reply to the email from {senders[0]} about "{subjects[0]}" with the text "{text}"',
        {"emails": emails, "target": order.index(0), "reply": text},
    )


_OPTIONS = (("Size", ("XS", "S", "M", "L", "XL")), ("Color", COLORS))
_SIZED = ("Jacket", "Sneakers", "Scarf", "Hoodie", "Cap", "Gloves", "Boots")


def _shop_products(rng: np.random.Generator, name: str, category: str, others: list[str], limit: int):
    """The shop's catalogue: the target first, then its distractors, then filler products."""

    def option(noun: str) -> dict | None:
        if rng.random() < 0.35:
            return None
        label, values = _OPTIONS[0 if noun in _SIZED else 1]
        return {"name": label, "values": sorted(pick(rng, values, _int(rng, 3, 4)), key=values.index)}

    noun = name.split()[-1]
    others_words = [w for w in WORDS if w.title() != name.split()[0]]
    specs = [
        (name, category, _int(rng, max(5, limit - 30), limit - 1)),  # the target
        (name, category, _int(rng, limit + 5, limit + 80)),  # its twin over the price limit
        *((name, cat, _int(rng, 5, limit - 1)) for cat in pick(rng, others, 2)),  # same name elsewhere
        *((f"{w.title()} {noun}", category, _int(rng, 5, limit - 1)) for w in pick(rng, others_words, 2)),
    ]
    n = _int(rng, 10, 14)
    while len(specs) < n:
        spec = (f"{pick(rng, WORDS).title()} {pick(rng, PRODUCT_NOUNS)}", pick(rng, [category, *others]))
        if all(spec != s[:2] for s in specs):
            specs.append((*spec, _int(rng, 5, 150)))
    products = [{"name": n, "category": c, "price": p, "option": option(n.split()[-1])} for n, c, p in specs]
    return products


@web_task(
    "Shopping",
    script="shopping",
    description="a shop: search and filter, open a product, pick an option, add to cart, check out",
    max_steps=18,
)
def shopping(rng: np.random.Generator) -> TaskInstance:
    categories = pick(rng, SHOP_CATEGORIES, _int(rng, 3, 5))
    category, others = categories[0], categories[1:]
    name = f"{pick(rng, WORDS).title()} {pick(rng, PRODUCT_NOUNS)}"
    limit = 10 * _int(rng, 3, 12)
    products = _shop_products(rng, name, category, others, limit)
    target = products[0]
    choice = pick(rng, target["option"]["values"]) if target["option"] else None
    order = [int(i) for i in rng.permutation(len(products))]
    products = [{"id": k, **products[i]} for k, i in enumerate(order)]
    ship = {
        "name": _person(rng),
        "address": f"{_int(rng, 1, 299)} {pick(rng, WORDS).title()} {pick(rng, STREET_KINDS)}",
        "city": pick(rng, CITIES),
    }
    option = f", {target['option']['name'].lower()} {choice}" if choice else ""
    return TaskInstance(
        f'Buy one "{name}" from the {category} category for at most ${limit}{option}. '
        f"Ship it to {ship['name']}, {ship['address']}, {ship['city']}.",
        {
            "products": products,
            "categories": sorted(categories),
            "target": order.index(0),
            "choice": choice,
            "limit": limit,
            "query": name,
            "category": category,
            "ship": ship,
        },
    )
