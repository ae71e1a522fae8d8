"""Tool-using envs: the `ToolEnv` contract (`base`) and the bundled tool envs."""

from palaestra.envs.tools.base import ToolEnv, ToolError

__all__ = ["ToolEnv", "ToolError"]
