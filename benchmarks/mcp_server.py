"""A no-op MCP server for the run benchmarks: `python -m benchmarks.mcp_server PORT` serves
streamable HTTP on 127.0.0.1:PORT/mcp (loopback only) until it is terminated.

It runs in its own process so the server's work never shares a GIL with what is measured.
"""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("bench")


@server.tool(description="Do nothing and say so.")
def noop() -> str:
    return "ok"


def main(argv: list[str]) -> None:
    app = server.streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=int(argv[0]), log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
