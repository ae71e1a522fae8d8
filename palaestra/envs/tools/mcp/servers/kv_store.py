"""A key-value store MCP server with state per session: get, set, delete, keys and increment.

Every session starts from the values given with `--set key=value` and sees only its own changes
(over stdio a process serves one session; over HTTP, sessions are told apart by their session id).

    python kv_store.py [--set KEY=VALUE ...]               stdio
    python kv_store.py --http PORT [--set KEY=VALUE ...]   streamable HTTP on http://127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import argparse

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("kv-store", instructions="A key-value store of text values.", log_level="WARNING")
initial: dict[str, str] = {}
stores: dict[str, dict[str, str]] = {}


def _store(ctx: Context) -> dict[str, str]:
    """The calling session's store (created from the initial values on first use)."""
    session = (ctx.headers or {}).get("mcp-session-id", "stdio")
    return stores.setdefault(session, dict(initial))


@server.tool()
def get(key: str, ctx: Context) -> str:
    """The value stored under key."""
    store = _store(ctx)
    if key not in store:
        raise ToolError(f"no key {key!r}")
    return store[key]


@server.tool(name="set")
def set_value(key: str, value: str, ctx: Context) -> str:
    """Store value under key (replacing any value there)."""
    _store(ctx)[key] = value
    return "ok"


@server.tool()
def delete(key: str, ctx: Context) -> str:
    """Remove key."""
    if _store(ctx).pop(key, None) is None:
        raise ToolError(f"no key {key!r}")
    return "ok"


@server.tool()
def keys(ctx: Context) -> str:
    """Every key, sorted, one per line (empty when there is none)."""
    return "\n".join(sorted(_store(ctx)))


@server.tool()
def increment(key: str, ctx: Context, by: int = 1) -> str:
    """Add `by` to the integer stored under key (a missing key counts as 0); the new value."""
    store = _store(ctx)
    try:
        value = int(store.get(key, "0")) + by
    except ValueError:
        raise ToolError(f"the value of {key!r} is not an integer: {store[key]!r}") from None
    store[key] = str(value)
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on this port")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an initial value")
    args = parser.parse_args()
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        initial[key] = value
    if args.http is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
