"""Widget task families: links, text entry, drop-downs, check boxes, multi-field forms, scrolling,
click sequences and a settings panel."""

from __future__ import annotations

import numpy as np

from palaestra.envs.web.tasks.base import TaskInstance, pick, web_task
from palaestra.envs.web.tasks.vocab import (
    CHOICE_GROUPS,
    CITIES,
    COLORS,
    COUNTRIES,
    FILLER,
    FIRST_NAMES,
    HEADINGS,
    LAST_NAMES,
    NOUNS,
    SETTINGS,
    VERBS,
    WORDS,
)


def _filler(rng: np.random.Generator, avoid: set[str], n: int) -> str:
    """`n` random words of plain text (no word of `avoid`), for the prose around links and cards."""
    pool = [w for w in WORDS if w not in avoid] + list(FILLER) * 2
    return " ".join(pick(rng, pool) for _ in range(n))


@web_task(
    "ClickLink",
    script="click_link",
    description="click the named link among many links in a paragraph or a list",
    max_steps=3,
)
def click_link(rng: np.random.Generator) -> TaskInstance:
    links = pick(rng, WORDS, int(rng.integers(5, 13)))
    target = pick(rng, links)
    layout = "list" if rng.random() < 0.4 else "paragraph"
    avoid = set(links)
    if layout == "list":
        blocks = [
            [{"link": w}, {"text": " - " + _filler(rng, avoid, int(rng.integers(2, 6)))}] for w in links
        ]
    else:
        cuts = sorted(
            int(c) for c in rng.choice(np.arange(1, len(links)), size=1 + len(links) // 5, replace=False)
        )
        blocks, start = [], 0
        for end in [*cuts, len(links)]:
            block = []
            for w in links[start:end]:
                block += [
                    {"text": _filler(rng, avoid, int(rng.integers(1, 5))) + " "},
                    {"link": w},
                    {"text": " "},
                ]
            block.append({"text": _filler(rng, avoid, int(rng.integers(1, 4))) + "."})
            block[0]["text"] = block[0]["text"].capitalize()
            blocks.append(block)
            start = end
    return TaskInstance(
        f'Click the link "{target}".',
        {
            "layout": layout,
            "blocks": blocks,
            "target": target,
            "heading": pick(rng, HEADINGS),
            "offset": int(rng.integers(0, 60)),
            "width": int(rng.integers(300, 460)),
        },
    )


_FIELD_LABELS = ("Answer", "Your name", "Search", "Code word", "Message", "Nickname", "Tag", "City", "Title")


@web_task(
    "EnterText",
    script="enter_text",
    description="type the given text into the named field and submit it",
    max_steps=4,
)
def enter_text(rng: np.random.Generator) -> TaskInstance:
    words = pick(rng, WORDS, 3)
    text = pick(
        rng,
        [
            words[0],
            f"{words[0]} {words[1]}",
            f"{words[0].capitalize()}{int(rng.integers(2, 100))}",
            f"{words[0]}-{words[1]}",
            f"{words[0].capitalize()} {words[1]} {words[2]}",
        ],
    )
    labels = pick(rng, _FIELD_LABELS, int(rng.integers(1, 3)))
    target, button = pick(rng, labels), pick(rng, ("Submit", "Send", "OK", "Go", "Save"))
    where = f'the "{target}" field' if len(labels) > 1 else "the text field"
    return TaskInstance(
        f'Type "{text}" into {where} and press {button}.',
        {
            "text": text,
            "labels": labels,
            "target": target,
            "button": button,
            "placeholders": [
                f"e.g. {w}" if rng.random() < 0.5 else "" for w in pick(rng, WORDS, len(labels))
            ],
            "offset": int(rng.integers(0, 120)),
            "top": int(rng.integers(0, 100)),
        },
    )


_OPTION_POOLS = (
    ("Favourite color", COLORS),
    ("City", CITIES),
    ("Country", COUNTRIES),
    ("Code name", tuple(w.capitalize() for w in WORDS)),
)


@web_task(
    "SelectOption",
    script="select_option",
    description="choose the named option of a drop-down list and submit",
    max_steps=4,
)
def select_option(rng: np.random.Generator) -> TaskInstance:
    label, pool = pick(rng, _OPTION_POOLS)
    options = pick(rng, pool, int(rng.integers(4, 13)))
    target, button = pick(rng, options), pick(rng, ("Submit", "Confirm", "Continue", "Done"))
    return TaskInstance(
        f'Select "{target}" from the "{label}" list and press {button}.',
        {
            "label": label,
            "options": options,
            "target": target,
            "button": button,
            "placeholder": pick(rng, ("Choose...", "-- select --", "(none)", "Pick one")),
            "offset": int(rng.integers(0, 150)),
            "top": int(rng.integers(0, 120)),
        },
    )


def _quoted_list(items: list[str]) -> str:
    """'"a"', '"a" and "b"', '"a", "b" and "c"'."""
    quoted = [f'"{item}"' for item in items]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


@web_task(
    "Checkboxes",
    script="checkboxes",
    description="tick exactly the named check boxes (some start ticked) and submit",
    max_steps=10,
)
def checkboxes(rng: np.random.Generator) -> TaskInstance:
    n = int(rng.integers(3, 9))
    labels = pick(rng, pick(rng, [WORDS, COLORS]), n)
    initial = [bool(b) for b in rng.random(n) < 0.35]
    while True:
        wanted = [bool(b) for b in rng.random(n) < 0.45]
        if any(wanted) and wanted != initial:
            break
    names = [label for label, on in zip(labels, wanted, strict=True) if on]
    button = pick(rng, ("Submit", "Done", "Apply", "Save"))
    return TaskInstance(
        f"Tick exactly the boxes {_quoted_list(names)} (untick every other box), then press {button}."
        if len(names) > 1
        else f'Tick only the "{names[0]}" box (untick every other box), then press {button}.',
        {
            "labels": labels,
            "initial": initial,
            "wanted": wanted,
            "button": button,
            "columns": int(rng.integers(1, 3)),
            "offset": int(rng.integers(0, 120)),
        },
    )


_RADIO_GROUPS = (
    ("Plan", ("Basic", "Pro", "Team", "Enterprise")),
    ("Size", ("S", "M", "L", "XL")),
    ("Contact by", ("Email", "Phone", "Post")),
    ("Seat", ("Window", "Middle", "Aisle")),
)

_FORM_TITLES = ("Sign up", "Create your account", "Registration", "Member details", "Join the club")


@web_task(
    "FillForm",
    script="fill_form",
    description="fill 3-6 fields of a sign-up form (text, e-mail, number, drop-down, radio) and submit",
    max_steps=10,
)
def fill_form(rng: np.random.Generator) -> TaskInstance:
    first, last = pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES)
    group, choices = pick(rng, _RADIO_GROUPS)
    countries = pick(rng, COUNTRIES, int(rng.integers(5, 10)))
    domain = pick(rng, ("example.com", "example.org", "example.net"))
    fields = [
        {"kind": "text", "label": pick(rng, ("First name", "Given name")), "value": first},
        {"kind": "text", "label": pick(rng, ("Last name", "Surname", "Family name")), "value": last},
        {
            "kind": "email",
            "label": pick(rng, ("Email", "E-mail address")),
            "value": f"{first}.{last}@{domain}".lower(),
        },
        {"kind": "select", "label": "Country", "options": countries, "value": pick(rng, countries)},
        {"kind": "radio", "label": group, "options": list(choices), "value": pick(rng, choices)},
        {"kind": "number", "label": pick(rng, ("Age", "Years")), "value": str(int(rng.integers(18, 81)))},
    ]
    fields = [fields[int(i)] for i in rng.permutation(len(fields))]
    required = set(int(i) for i in rng.choice(len(fields), size=int(rng.integers(3, 7)), replace=False))
    for i, spec in enumerate(fields):
        if i not in required:
            spec["value"] = None
    button = pick(rng, ("Register", "Sign up", "Submit", "Create account"))
    wanted = ", ".join(f'{f["label"]} "{f["value"]}"' for f in fields if f["value"] is not None)
    return TaskInstance(
        f"Fill in the form with {wanted}, then press {button}.",
        {
            "fields": fields,
            "button": button,
            "offset": int(rng.integers(0, 60)),
            "title": pick(rng, _FORM_TITLES),
        },
    )


@web_task(
    "ScrollFind",
    script="scroll_find",
    description="find a button far down a long page of cards (similar labels around it) and click it",
    max_steps=3,
)
def scroll_find(rng: np.random.Generator) -> TaskInstance:
    n = int(rng.integers(9, 15))
    verb, noun = pick(rng, VERBS), pick(rng, NOUNS)
    labels = {f"{verb} {noun}"}
    while len(labels) < n:
        kind = rng.random()
        v = verb if kind < 0.35 else pick(rng, VERBS)
        w = noun if 0.35 <= kind < 0.7 else pick(rng, NOUNS)
        labels.add(f"{v} {w}")
    target = f"{verb} {noun}"
    others = sorted(labels - {target})
    others = [others[int(i)] for i in rng.permutation(len(others))]
    at = int(rng.integers(max(5, n // 2), n))
    buttons = [*others[:at], target, *others[at:]]
    titles = pick(rng, WORDS, n)
    cards = [
        {
            "title": t.capitalize(),
            "text": _filler(rng, set(), int(rng.integers(8, 22))).capitalize() + ".",
            "button": b,
        }
        for t, b in zip(titles, buttons, strict=True)
    ]
    return TaskInstance(
        f'Find the "{target}" button and click it.',
        {
            "cards": cards,
            "target": target,
            "heading": pick(rng, HEADINGS),
            "offset": int(rng.integers(0, 80)),
        },
    )


@web_task(
    "ClickSequence",
    script="click_sequence",
    description="click 2-4 of several buttons in the stated order (a wrong or early click fails)",
    max_steps=6,
)
def click_sequence(rng: np.random.Generator) -> TaskInstance:
    n = int(rng.integers(3, 8))
    labels = pick(rng, pick(rng, [VERBS, COLORS, tuple(w.capitalize() for w in WORDS)]), n)
    order = pick(rng, labels, int(rng.integers(2, min(4, n) + 1)))
    return TaskInstance(
        "Click the buttons " + ", then ".join(f'"{label}"' for label in order) + ", in that order.",
        {
            "labels": labels,
            "order": order,
            "offsets": [int(x) for x in rng.integers(0, 40, size=n)],
            "layout": pick(rng, ("row", "column")),
        },
    )


@web_task(
    "Settings",
    script="settings",
    description="set named toggle switches and a radio choice in a settings panel, then save",
    max_steps=8,
)
def settings(rng: np.random.Generator) -> TaskInstance:
    labels = pick(rng, SETTINGS, int(rng.integers(3, 7)))
    initial = [bool(b) for b in rng.random(len(labels)) < 0.5]
    size = int(rng.integers(2, min(4, len(labels)) + 1))
    named = sorted(int(i) for i in rng.choice(len(labels), size=size, replace=False))
    wanted = {labels[i]: bool(rng.random() < 0.5) for i in named}
    flip = labels[pick(rng, named)]
    if all(wanted[labels[i]] == initial[i] for i in named):
        wanted[flip] = not wanted[flip]  # at least one switch has to change
    group, options = pick(rng, CHOICE_GROUPS)
    start, target = pick(rng, options, 2)
    steps = [f'turn {"on" if on else "off"} "{label}"' for label, on in wanted.items()]
    steps.append(f'set {group} to "{target}"')
    steps = [steps[int(i)] for i in rng.permutation(len(steps))]
    button = pick(rng, ("Save", "Save changes", "Apply"))
    return TaskInstance(
        f"In the settings, {', '.join(steps[:-1])} and {steps[-1]}, then press {button}.",
        {
            "switches": [{"label": label, "on": on} for label, on in zip(labels, initial, strict=True)],
            "wanted": wanted,
            "group": group,
            "options": list(options),
            "start": start,
            "target": target,
            "button": button,
            "switch_first": bool(rng.random() < 0.5),
            "offset": int(rng.integers(0, 100)),
        },
    )
