"""Tool-using envs: the `ToolEnv` contract (`base`) and the bundled tool envs."""

from palaestra.envs.tools import mcp as _mcp  # noqa: F401  (registers palaestra/Tool-MCP-v0)
from palaestra.envs.tools import search as _search  # noqa: F401  (registers palaestra/Tool-Search-v0*)
from palaestra.envs.tools import terminal as _terminal  # noqa: F401  (registers palaestra/Tool-Terminal-*)
from palaestra.envs.tools.base import ToolEnv, ToolError

__all__ = ["ToolEnv", "ToolError"]
