"""Read code and tool calls out of an assistant's reply.

Code goes in a fenced block: three backticks, optionally `python` / `py` / `python3`, the code, three
backticks. When a reply holds several blocks the last Python (or unlabelled) block counts. The
python tool's call format is `<python>...</python>`; a fenced block is accepted there too.
"""

from __future__ import annotations

import re

__all__ = ["CODE_FORMAT_HINT", "TOOL_FORMAT_HINT", "extract_code", "extract_tool_call"]

CODE_FORMAT_HINT = "Reply with your complete program in one fenced code block: ```python ... ```"
TOOL_FORMAT_HINT = "To run Python, put the code between <python> and </python>."

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_LABELS = {"", "python", "py", "python3", "py3"}
_TOOL_RE = re.compile(r"<python>(.*?)</python>", re.DOTALL)


def extract_code(reply: str) -> str | None:
    """The program in `reply`'s last Python code block, or None if there is none (or it is empty).

    An unterminated final block (the reply ran out of tokens) still counts: the code up to the end.
    """
    blocks = [body for label, body in _FENCE_RE.findall(reply) if label.lower() in _PYTHON_LABELS]
    if not blocks or not blocks[-1].strip():
        return None
    return blocks[-1].strip("\n") + "\n"


def extract_tool_call(reply: str) -> str | None:
    """The code of a python tool call: the last `<python>...</python>`, else the last code block."""
    calls = _TOOL_RE.findall(reply)
    if calls and calls[-1].strip():
        return calls[-1].strip("\n") + "\n"
    return extract_code(reply)
