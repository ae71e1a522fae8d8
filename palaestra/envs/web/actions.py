"""The action languages of web envs: a small DSL over element ids (text mode) and coordinates (GUI mode).

Text mode (elements are named by the ids `[N]` of the accessibility-tree observation):

    click [12]                 click element 12
    type [7] "hello"           replace the text of field 7 with "hello"
    select [3] "Blue"          choose the option labelled "Blue" in drop-down 3
    press "Enter"              press a key (Playwright key names: Enter, Tab, ArrowDown, Control+A, ...)
    scroll down | scroll up    scroll the page by most of a screen
    stop                       end the episode

GUI mode (pixels of the screenshot, origin at the top left):

    click(120, 48)             click at x=120, y=48
    type("hello")              type into whatever has the focus
    key("Enter")               press a key
    scroll(0, 300)             scroll by dx, dy pixels
    stop()                     end the episode

A reply may hold reasoning around the action: the env reads the LAST line that is an action (code
fences and backticks around it are ignored). Strings are double-quoted with JSON escapes (`\\"`, `\\n`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["ActionParseError", "Mode", "WebAction", "format_action", "parse_action", "random_action"]

Mode = Literal["text", "gui"]
_STRING = r'"((?:[^"\\]|\\.)*)"'
_REF = r"\[\s*e?(\d+)\s*\]"
_NUM = r"(-?\d+(?:\.\d+)?)"
_TEXT_PATTERNS: dict[str, re.Pattern[str]] = {
    "click": re.compile(rf"click\s*{_REF}", re.I),
    "type": re.compile(rf"type\s*{_REF}\s*{_STRING}", re.I),
    "select": re.compile(rf"select\s*{_REF}\s*{_STRING}", re.I),
    "press": re.compile(rf"press\s*{_STRING}", re.I),
    "scroll": re.compile(r"scroll\s+(up|down)", re.I),
    "stop": re.compile(r"stop", re.I),
}
_GUI_PATTERNS: dict[str, re.Pattern[str]] = {
    "click": re.compile(rf"click\(\s*{_NUM}\s*,\s*{_NUM}\s*\)", re.I),
    "type": re.compile(rf"type\(\s*{_STRING}\s*\)", re.I),
    "key": re.compile(rf"key\(\s*{_STRING}\s*\)", re.I),
    "scroll": re.compile(rf"scroll\(\s*{_NUM}\s*,\s*{_NUM}\s*\)", re.I),
    "stop": re.compile(r"stop\(\s*\)", re.I),
}
TEXT_FORMAT = (
    'click [N] | type [N] "text" | select [N] "option" | press "Key" | scroll down | scroll up | stop'
)
GUI_FORMAT = 'click(x, y) | type("text") | key("Key") | scroll(dx, dy) | stop()'
_MAX_TEXT = 2000


class ActionParseError(ValueError):
    """The reply holds no action in the env's format; the message says what was expected."""


@dataclass(frozen=True)
class WebAction:
    """One parsed action.

    Attributes:
        op: click | type | select | press | scroll | stop (text mode); click | type | key | scroll |
            stop (GUI mode).
        ref: the element id of a text-mode click/type/select ("e12").
        text: the string argument (typed text, option label, key name).
        x, y: GUI click position in pixels.
        dx, dy: scroll amount in pixels (text mode: dy = +/-1 means one screen down/up).
    """

    op: str
    ref: str | None = None
    text: str | None = None
    x: float = 0.0
    y: float = 0.0
    dx: float = 0.0
    dy: float = 0.0


def _unquote(body: str) -> str:
    try:
        return json.loads(f'"{body}"')
    except json.JSONDecodeError as exc:
        raise ActionParseError(f"bad escape in the string {body!r}: {exc.msg}") from exc


def _candidate_lines(reply: str) -> list[str]:
    lines = []
    for raw in reply.splitlines():
        line = raw.strip().strip("`").strip()
        if line.lower().startswith(("action:", "action -")):
            line = line.split(":", 1)[-1].strip() if ":" in line else line[len("action -") :].strip()
        if line:
            lines.append(line)
    return lines


def _parse_line(line: str, mode: Mode) -> WebAction | None:
    patterns = _TEXT_PATTERNS if mode == "text" else _GUI_PATTERNS
    for op, pattern in patterns.items():
        match = pattern.fullmatch(line)
        if match is None:
            continue
        groups = match.groups()
        if mode == "text":
            if op == "click":
                return WebAction("click", ref=f"e{groups[0]}")
            if op in ("type", "select"):
                return WebAction(op, ref=f"e{groups[0]}", text=_unquote(groups[1]))
            if op == "press":
                return WebAction("press", text=_unquote(groups[0]))
            if op == "scroll":
                return WebAction("scroll", dy=1.0 if groups[0].lower() == "down" else -1.0)
            return WebAction("stop")
        if op == "click":
            return WebAction("click", x=float(groups[0]), y=float(groups[1]))
        if op in ("type", "key"):
            return WebAction(op, text=_unquote(groups[0]))
        if op == "scroll":
            return WebAction("scroll", dx=float(groups[0]), dy=float(groups[1]))
        return WebAction("stop")
    return None


def parse_action(reply: str, mode: Mode) -> WebAction:
    """The last action in `reply`.

    Raises:
        ActionParseError: no line of the reply is an action of `mode`'s format, or a string is too long.
    """
    for line in reversed(_candidate_lines(reply)):
        action = _parse_line(line, mode)
        if action is not None:
            if action.text is not None and len(action.text) > _MAX_TEXT:
                raise ActionParseError(
                    f"the text argument has {len(action.text)} characters; limit {_MAX_TEXT}"
                )
            return action
    expected = TEXT_FORMAT if mode == "text" else GUI_FORMAT
    raise ActionParseError(f"no action found; end your reply with one line: {expected}")


def format_action(action: WebAction, mode: Mode) -> str:
    """The canonical text of an action (what the expert replies); `parse_action` reads it back."""
    quoted = json.dumps(action.text, ensure_ascii=False) if action.text is not None else ""
    if mode == "text":
        ref = f"[{action.ref[1:]}]" if action.ref else ""
        return {
            "click": f"click {ref}",
            "type": f"type {ref} {quoted}",
            "select": f"select {ref} {quoted}",
            "press": f"press {quoted}",
            "scroll": "scroll down" if action.dy >= 0 else "scroll up",
            "stop": "stop",
        }[action.op]
    return {
        "click": f"click({action.x:g}, {action.y:g})",
        "type": f"type({quoted})",
        "key": f"key({quoted})",
        "scroll": f"scroll({action.dx:g}, {action.dy:g})",
        "stop": "stop()",
    }[action.op]


def random_action(observation: str, mode: Mode, rng: np.random.Generator, viewport: tuple[int, int]) -> str:
    """A uniformly random well-formed action (the random-agent baseline of web tasks).

    Text mode draws an operation, then an element id from those in `observation` (the page's text);
    GUI mode draws a point on the screen, a key or a short scroll.
    """
    words = ("hello", "test", "42", "yes", "Blue", "admin")
    keys = ("Enter", "Tab", "ArrowDown", "Escape")
    if mode == "text":
        ids = re.findall(r"\[(\d+)\]", observation) or ["1"]
        ref = f"[{ids[int(rng.integers(len(ids)))]}]"
        op = ("click", "click", "click", "type", "select", "press", "scroll", "stop")[int(rng.integers(8))]
        word = json.dumps(words[int(rng.integers(len(words)))])
        return {
            "click": f"click {ref}",
            "type": f"type {ref} {word}",
            "select": f"select {ref} {word}",
            "press": f"press {json.dumps(keys[int(rng.integers(len(keys)))])}",
            "scroll": "scroll down" if rng.random() < 0.5 else "scroll up",
            "stop": "stop",
        }[op]
    width, height = viewport
    op = ("click", "click", "click", "type", "key", "scroll", "stop")[int(rng.integers(7))]
    if op == "click":
        return f"click({int(rng.integers(width))}, {int(rng.integers(height))})"
    if op == "type":
        return f"type({json.dumps(words[int(rng.integers(len(words)))])})"
    if op == "key":
        return f"key({json.dumps(keys[int(rng.integers(len(keys)))])})"
    if op == "scroll":
        return f"scroll(0, {int(rng.integers(-300, 301))})"
    return "stop()"
