"""MCP servers bundled with the MCP env, written with the `mcp` SDK's server API.

Each is a standalone script (it imports only `mcp`), run by the bundled tasks over stdio
(`python servers/calculator.py`) or over streamable HTTP (`--http PORT`, on 127.0.0.1).
"""
