"""Tool calling: the call type and reply parsers (`calls`), tool declarations and their prompt (`schema`).

Envs that use tools build on `palaestra.envs.tools.ToolEnv`; rewards that judge replies are in
`palaestra.rewards`.
"""

from palaestra.tools.calls import (
    TOOL_PARSERS,
    ParsedReply,
    ToolCall,
    ToolCallParser,
    format_tool_calls,
    get_tool_parser,
    register_tool_parser,
)
from palaestra.tools.schema import function_tool, tool_name, tools_prompt, validate_arguments

__all__ = [
    "TOOL_PARSERS",
    "ParsedReply",
    "ToolCall",
    "ToolCallParser",
    "format_tool_calls",
    "function_tool",
    "get_tool_parser",
    "register_tool_parser",
    "tool_name",
    "tools_prompt",
    "validate_arguments",
]
