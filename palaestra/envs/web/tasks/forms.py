"""Form and widget task families: buttons, links, text fields, log-in, drop-downs, check boxes, forms."""

from __future__ import annotations

import numpy as np

from palaestra.envs.web.tasks.base import TaskInstance, pick, web_task
from palaestra.envs.web.tasks.vocab import FIRST_NAMES, LAST_NAMES, VERBS, WORDS


def _offsets(rng: np.random.Generator, n: int, spread: int = 60) -> list[int]:
    """Random left margins (pixels) so elements do not sit at the same place every episode."""
    return [int(x) for x in rng.integers(0, spread, size=n)]


@web_task(
    "ClickButton",
    script="click_button",
    description="click the button with the given label among several",
    max_steps=3,
)
def click_button(rng: np.random.Generator) -> TaskInstance:
    labels = pick(rng, VERBS, int(rng.integers(3, 8)))
    target = pick(rng, labels)
    return TaskInstance(
        f'Click the "{target}" button.',
        {"labels": labels, "target": target, "offsets": _offsets(rng, len(labels))},
    )


@web_task(
    "Login",
    script="login",
    description="log in: type a username and a password, then press the log-in button",
    max_steps=6,
)
def login(rng: np.random.Generator) -> TaskInstance:
    username = f"{pick(rng, FIRST_NAMES).lower()}.{pick(rng, LAST_NAMES).lower()}"
    password = f"{pick(rng, WORDS)}{int(rng.integers(10, 100))}"
    return TaskInstance(
        f'Log in with username "{username}" and password "{password}".',
        {
            "username": username,
            "password": password,
            "button": pick(rng, ["Log in", "Sign in", "Enter"]),
            "order": "user-first" if rng.random() < 0.8 else "password-first",
            "offset": int(rng.integers(0, 80)),
        },
    )
