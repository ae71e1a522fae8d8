"""Tool declarations: OpenAI-style function schemas, argument checks, and the prompt for templates
that cannot render tools.

A tool is declared as the JSON object chat templates (`apply_chat_template(..., tools=...)`) and
OpenAI-compatible servers (`tools=`) take:

    {"type": "function", "function": {"name": "search", "description": "...",
                                      "parameters": {"type": "object", "properties": {...},
                                                     "required": [...]}}}
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["function_tool", "tool_name", "tools_prompt", "validate_arguments"]


def function_tool(name: str, description: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tool declaration; `parameters` is the JSON schema of its arguments (default: none)."""
    schema = parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


def tool_name(tool: dict[str, Any]) -> str:
    """The name of a tool declaration."""
    return str(tool["function"]["name"])


def validate_arguments(tool: dict[str, Any], arguments: dict[str, Any]) -> str | None:
    """Why `arguments` do not fit the tool's parameter schema (one line, for the agent), or None."""
    import jsonschema

    schema = tool["function"].get("parameters") or {"type": "object"}
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except jsonschema.SchemaError as exc:  # the env's own declaration is broken: say so, do not crash
        return f"tool {tool_name(tool)} declares an invalid schema: {exc.message}"
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"invalid arguments for {tool_name(tool)}: {error.message}" + (f" (at {where})" if where else "")


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """A validator for one schema, checked once (`jsonschema.validate` checks the schema on every call)."""
    import jsonschema

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def tools_prompt(tools: Sequence[dict[str, Any]]) -> str:
    """System-prompt text that declares `tools` and the hermes call format, for chat templates that
    ignore `tools=` (the rollout appends it to the system message; templates that render tools get
    them natively instead)."""
    lines = [
        "# Tools",
        "",
        "You may call one or more functions to assist with the user query.",
        "The functions you can call are declared in JSON schema inside <tools></tools>:",
        "<tools>",
        *(json.dumps(tool, ensure_ascii=False) for tool in tools),
        "</tools>",
        "",
        "To call a function, reply with a JSON object of its name and arguments inside tags:",
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>',
        "Reply without a tool call to give your final answer.",
    ]
    return "\n".join(lines)
