"""A calculator MCP server: add, subtract, multiply, divide, power and sqrt on numbers.

Results are numbers written plainly ("42", "0.5"); dividing by zero or a negative square root is a
tool error the caller sees.

    python calculator.py               stdio
    python calculator.py --http PORT   streamable HTTP on http://127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import argparse
import math

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("calculator", instructions="Exact arithmetic on numbers.", log_level="WARNING")


def _number(value: float) -> str:
    """A number as people write it: integral values without a fraction, others to 12 digits."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.12g}"


@server.tool()
def add(a: float, b: float) -> str:
    """a + b."""
    return _number(a + b)


@server.tool()
def subtract(a: float, b: float) -> str:
    """a - b."""
    return _number(a - b)


@server.tool()
def multiply(a: float, b: float) -> str:
    """a * b."""
    return _number(a * b)


@server.tool()
def divide(a: float, b: float) -> str:
    """a / b (b must not be 0)."""
    if b == 0:
        raise ToolError("division by zero")
    return _number(a / b)


@server.tool()
def power(base: float, exponent: float) -> str:
    """base ** exponent."""
    try:
        return _number(base**exponent)
    except (OverflowError, ZeroDivisionError) as exc:
        raise ToolError(f"power({base:g}, {exponent:g}) is undefined: {exc}") from None


@server.tool()
def sqrt(x: float) -> str:
    """The square root of x (x >= 0)."""
    if x < 0:
        raise ToolError(f"sqrt of a negative number ({x:g})")
    return _number(math.sqrt(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on this port")
    args = parser.parse_args()
    if args.http is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
