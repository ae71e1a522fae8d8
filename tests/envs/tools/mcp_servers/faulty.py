"""An MCP server that misbehaves on request, for the MCP env's failure tests (stdio only).

echo(text)   the text back
fail()       a tool error (`isError`)
spawn()      starts a child process (sleeps) and returns its pid
crash()      starts a child process, then the server dies (exit code 3)
hang()       starts a child process, then blocks the server for good
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("faulty", log_level="WARNING")


def _child() -> int:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid


@server.tool()
def echo(text: str) -> str:
    """The text back."""
    return text


@server.tool()
def fail() -> str:
    """Always fails."""
    raise ToolError("this tool always fails")


@server.tool()
def spawn() -> str:
    """Start a child process; its pid."""
    return str(_child())


@server.tool()
def crash() -> str:
    """The server dies."""
    _child()
    print("faulty server: crashing on purpose", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool()
async def hang() -> str:
    """The server stops answering (its event loop blocks)."""
    _child()
    time.sleep(3600)
    return "never"


if __name__ == "__main__":
    server.run()
