"""MCP tool envs: tasks solved with the tools of any MCP server (stdio or streamable HTTP), through the
official `mcp` SDK.

    palaestra/Tool-MCP-v0    the bundled tasks (a calculator and a key-value store server), or your
                             own task file: make("palaestra/Tool-MCP-v0", tasks="my_tasks.yaml")

The task file format is in `palaestra.envs.tools.mcp.tasks`; the env in `palaestra.envs.tools.mcp.env`.
Importing this package only registers the id: the SDK is imported when the env is made.
"""

from __future__ import annotations

from palaestra.envs.registration import register_env

MAX_TURNS = 8

register_env(
    "palaestra/Tool-MCP-v0",
    "palaestra.envs.tools.mcp.env:MCPEnv",
    description="Tasks over MCP servers' tools (bundled: calculator, key-value store), judged by a check",
    family="Tool",
    max_turns=MAX_TURNS,
    reward_range=(0.0, 1.0),
    kwargs={"max_turns": MAX_TURNS},
)
