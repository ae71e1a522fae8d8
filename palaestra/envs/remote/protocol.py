"""What a palaestra env server and its clients say to each other, as OpenEnv's own message types.

`palaestra serve` speaks the OpenEnv protocol (`openenv-core`'s server: WebSocket sessions at `/ws`,
`reset` / `step` / `state` / `close` messages); these are the env-specific parts OpenEnv leaves to each
env, its `Action` and `Observation` models. Any OpenEnv client can use them as plain JSON:

    reset data:  {"seed": 3, "env_id": "palaestra/Game-Wordle-v0", "env_kwargs": {}, "options": null}
    step data:   {"text": "the assistant's whole reply"}
    observation: {"text": ..., "terminated": ..., "truncated": ..., "info": {...}, "system_prompt": ...,
                  "env_id": ..., "tools": [...], "tool_parser": ...} with OpenEnv's `reward` and `done`
                  beside it (`tools` and `tool_parser`, a tool env's declarations and reply format, on
                  reset only)

`env_id` may be left out when the server serves one env; `env_kwargs` rebuilds the session's env when
they differ from the last reset's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from openenv.core.env_server.types import Action, Observation
from pydantic import Field

__all__ = ["SERVER_NAME", "TextAction", "TextObservation", "json_safe"]

SERVER_NAME = "palaestra"
"""`EnvironmentMetadata.name` of a palaestra server (`GET /metadata`): how a client tells one apart
from other OpenEnv servers."""


class TextAction(Action):
    """One action of a palaestra env: the assistant's whole reply."""

    text: str = Field(description="The assistant's whole reply, as `env.step` receives it.")


class TextObservation(Observation):
    """What a palaestra env answered to `reset` or `step` (OpenEnv's `done` = terminated or truncated)."""

    text: str = Field(default="", description="The env's observation (the next user or tool message).")
    terminated: bool = Field(default=False, description="The task ended (gymnasium's `terminated`).")
    truncated: bool = Field(default=False, description="A limit ended the episode (gymnasium's `truncated`).")
    info: dict[str, Any] = Field(default_factory=dict, description="The env's info dict, JSON-safe.")
    system_prompt: str = Field(
        default="", description="The env's system prompt (`env.unwrapped.system_prompt`)."
    )
    env_id: str = Field(default="", description="The full id of the env that answered.")
    tools: list[dict[str, Any]] = Field(
        default_factory=list, description="A tool env's tool declarations (`env.unwrapped.tools`), on reset."
    )
    tool_parser: str = Field(default="", description="A tool env's tool-call reply format, on reset.")


def json_safe(value: Any) -> Any:
    """`value` as JSON data: numpy scalars and arrays as Python numbers and lists, tuples as lists,
    non-finite floats as None, dict keys as strings, anything else as its `repr`."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    return repr(value)
