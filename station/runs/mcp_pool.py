"""MCP sessions held for the length of one run (worker side).

Each server an agent calls is connected once, on its first tool call, and kept open until the
run ends; the async SDK runs in a blocking portal (a private event-loop thread) so the run
loop itself stays synchronous Django code. On connecting, the server's live tool list is
compared with the approved definitions: a tool the server now describes differently from
what an admin approved is refused even if nobody has re-run discovery (tool poisoning).
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from django.conf import settings
from mcp import MCPError
from mcp import types as mcp_types

from station.tools import discovery
from station.tools.models import McpServer
from tenants.authz import Principal

log = logging.getLogger(__name__)


class ToolCallFailed(Exception):
    """The call did not produce a tool result (connect failure, timeout, protocol error)."""


@dataclass
class ToolResult:
    text: str
    is_error: bool
    structured: Any = None
    content: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Session:
    client: Any
    live_hashes: dict[str, str]
    errlog: Any


class SessionPool:
    def __init__(self, *, actor: Principal, purpose: str) -> None:
        self.actor = actor
        self.purpose = purpose
        self.secret_values: list[str] = []
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._sessions: dict[str, _Session] = {}
        self._broken: dict[str, str] = {}

    def __enter__(self) -> SessionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._stack.close()
        except Exception:  # a server that dies on shutdown must not fail the run
            log.warning("closing MCP sessions failed", exc_info=True)
        self._sessions.clear()
        self._portal = None

    def _get_portal(self) -> BlockingPortal:
        if self._portal is None:
            self._portal = self._stack.enter_context(start_blocking_portal())
        return self._portal

    def _session(self, server: McpServer) -> _Session:
        if server.name in self._sessions:
            return self._sessions[server.name]
        config = discovery.resolve(server, actor=self.actor, purpose=self.purpose)
        self.secret_values.extend(config.secret_values)
        timeout = float(settings.MCP_TIMEOUT_SECONDS)
        errlog = self._stack.enter_context(
            tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace"))  # noqa: SIM115
        portal = self._get_portal()
        try:
            # Connecting is bounded by the client's read timeout (initialize is a request);
            # a cancel scope around entering would outlive its task group (anyio forbids it).
            client = self._stack.enter_context(
                portal.wrap_async_context_manager(discovery._client(config, errlog, timeout)))
            tools = portal.call(_list_all, client, timeout)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            errlog.seek(0)
            message = config.redact(discovery._describe(exc, config, errlog.read(), timeout))
            raise ToolCallFailed(message) from None
        session = _Session(client, {t.name: t.content_hash for t in tools}, errlog)
        self._sessions[server.name] = session
        return session

    def live_hash(self, server: McpServer, tool: str) -> str | None:
        return self._session(server).live_hashes.get(tool)

    def call(self, server: McpServer, tool: str, arguments: dict[str, Any],
             timeout: float) -> ToolResult:
        session = self._session(server)
        portal = self._get_portal()
        try:
            result: mcp_types.CallToolResult = portal.call(_call, session.client, tool,
                                                            arguments, timeout)
        except MCPError as exc:
            if exc.error.code == -32001 or "timed out" in exc.error.message.lower():
                raise ToolCallFailed(f"The tool call timed out after {timeout:g}s.") from None
            if exc.error.message == "Connection closed":
                self._sessions.pop(server.name, None)
                session.errlog.seek(0)
                tail = session.errlog.read().strip()[-600:]
                raise ToolCallFailed(
                    "The MCP server closed the connection during the call (it may have "
                    f"crashed).{' Its stderr ends with: ' + tail if tail else ''}") from None
            raise ToolCallFailed(f"MCP error {exc.error.code}: {exc.error.message}") from None
        except TimeoutError:
            raise ToolCallFailed(f"The tool call timed out after {timeout:g}s.") from None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # malformed output, broken pipes, validation errors
            self._sessions.pop(server.name, None)
            first = next(iter(discovery._leaves(exc)), exc)
            raise ToolCallFailed(f"The MCP server's answer could not be used: "
                                 f"{type(first).__name__}: {discovery._plain(first)}") from None
        return _result(result)


async def _list_all(client: Any, timeout: float) -> list[Any]:
    found: list[Any] = []
    cursor: str | None = None
    with anyio.fail_after(timeout):
        for _ in range(50):
            page = await client.list_tools(cursor=cursor, cache_mode="bypass")
            found.extend(discovery._definition(tool) for tool in page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
    return found


async def _call(client: Any, tool: str, arguments: dict[str, Any],
                timeout: float) -> mcp_types.CallToolResult:
    with anyio.fail_after(timeout + 1):
        result: mcp_types.CallToolResult = await client.call_tool(
            tool, arguments, read_timeout_seconds=timeout)
        return result


def _result(result: mcp_types.CallToolResult) -> ToolResult:
    texts: list[str] = []
    content: list[dict[str, Any]] = []
    for block in result.content:
        data = block.model_dump(mode="json", by_alias=True, exclude_none=True)
        if getattr(block, "type", "") == "text":
            texts.append(str(getattr(block, "text", "")))
            content.append({"type": "text", "text": data.get("text", "")})
        else:
            # Images and resources are described, not inlined: steps stay small and readable.
            kind = data.get("type", "content")
            content.append({"type": kind, "summary": f"[{kind} content omitted]"})
            texts.append(f"[{kind} content]")
    structured = result.structured_content
    text = "\n".join(texts)
    if not text and structured is not None:
        import json

        text = json.dumps(structured, ensure_ascii=False)
    return ToolResult(text=text, is_error=bool(result.is_error), structured=structured,
                      content=content)
