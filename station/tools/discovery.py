"""Talking to MCP servers from the worker: discovery (list and pin tools) and health checks.

Runs only where secrets may be revealed (worker processes): `${secret:…}` and `${var:…}` in a
server's command, args, env, url and headers are resolved here, just before connecting, and
every revealed value is redacted from whatever is stored (errors, audit). The MCP I/O runs
outside any database transaction; each write is its own short transaction.

Uses the official `mcp` SDK 2.x: `mcp.Client` in `legacy` mode (the initialize handshake every
server speaks), bounded as a whole by `settings.MCP_TIMEOUT_SECONDS` (connect + list).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio
import httpx2
from django.conf import settings
from django.db import transaction
from mcp import Client, MCPError, StdioServerParameters
from mcp import types as mcp_types
from mcp.client._transport import TransportStreams
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from station.core import egress
from station.tools import services
from station.tools.hashing import ToolDefinition
from station.tools.models import McpServer
from station.vault.services import redact, resolve_references
from tenants.authz import Principal

# The stdio child runs under `sh` so that its exit status reaches us on stderr: the SDK keeps
# the process to itself, and "exited with code 3" is the one thing an admin needs to know.
_EXIT_MARK = "station-mcp-exit:"
_SH_WRAPPER = f'"$0" "$@"; code=$?; printf "\\n{_EXIT_MARK}%d\\n" "$code" >&2; exit "$code"'
_EXIT_LINE = re.compile(rf"^{re.escape(_EXIT_MARK)}(\d+)$", re.M)
_STDERR_TAIL = 600
_MAX_PAGES = 50


class DiscoveryFailed(Exception):
    """A connection or listing failure, with a message fit to store (secrets redacted)."""


@dataclass
class DiscoveryResult:
    ok: bool
    tools: list[ToolDefinition] = field(default_factory=list)
    latency_ms: int | None = None
    error: str = ""
    # For a discovery: what changed ({"added": [...], "changed": [...], ...}).
    summary: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _Config:
    """A server's connection settings with references resolved (worker memory only)."""

    transport: str
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    secret_values: list[str] = field(default_factory=list)
    # HTTP error statuses seen while talking to the server: the SDK turns them into JSON-RPC
    # errors ("Server returned an error response") and the status would be lost.
    http_errors: list[tuple[int, str]] = field(default_factory=list)

    def redact(self, text: str) -> str:
        return redact(text, self.secret_values)

    def fingerprint(self) -> str:
        """A digest of everything that defines the connection once resolved (so a changed
        setting, secret or variable gives another value); the values never leave memory."""
        data = [self.transport, self.command, self.args, sorted(self.env.items()), self.url,
                sorted(self.headers.items())]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()


# --- public entry points -----------------------------------------------------------------------


def discover(server: McpServer, *, actor: Principal, purpose: str) -> DiscoveryResult:
    """List the server's tools and record them (pinned by hash); a failure is recorded on the
    server row instead. Call with the org scope active and outside any transaction."""
    try:
        tools, latency_ms = list_tools(server, actor=actor, purpose=purpose)
    except DiscoveryFailed as exc:
        _record_failure(server, str(exc), None)
        return DiscoveryResult(ok=False, error=str(exc))
    with transaction.atomic():
        current = McpServer.objects.filter(pk=server.pk).first()
        if current is None:  # deleted while we were listing: nothing to record
            return DiscoveryResult(ok=False, tools=tools, latency_ms=latency_ms,
                                   error="The server was deleted during discovery.")
        summary = services.record_discovery(actor=actor, server=current, tools=tools,
                                            latency_ms=latency_ms)
    return DiscoveryResult(ok=True, tools=tools, latency_ms=latency_ms, summary=summary)


def check_health(server: McpServer, *, actor: Principal) -> DiscoveryResult:
    """Connect and list tools, timing it; records ok (with latency) or the error. Tools are not
    touched: a changed definition is discovery's business."""
    try:
        tools, latency_ms = list_tools(server, actor=actor,
                                       purpose=f"health check of MCP server {server.name}")
    except DiscoveryFailed as exc:
        _record_failure(server, str(exc), None)
        return DiscoveryResult(ok=False, error=str(exc))
    with transaction.atomic():
        current = McpServer.objects.filter(pk=server.pk).first()
        if current is not None:
            services.record_health(server=current, latency_ms=latency_ms)
    return DiscoveryResult(ok=True, tools=tools, latency_ms=latency_ms)


def list_tools(server: McpServer, *, actor: Principal,
               purpose: str) -> tuple[list[ToolDefinition], int]:
    """Resolve the server's references, connect, and list every tool. Returns the definitions
    and the latency (ms, connect + list). Raises DiscoveryFailed with a redacted message."""
    config = resolve(server, actor=actor, purpose=purpose)
    timeout = float(settings.MCP_TIMEOUT_SECONDS)
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as errlog:
        try:
            tools = run_anyio(_list_tools, config, errlog, timeout)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # every other failure becomes a message
            errlog.seek(0)
            message = _describe(exc, config, errlog.read(), timeout)
            raise DiscoveryFailed(config.redact(message)) from None
    latency_ms = int((time.monotonic() - started) * 1000)
    return tools, latency_ms


def run_anyio(fn: Any, *args: Any) -> Any:
    """anyio.run, or the same in a helper thread when this thread already runs an event loop
    (an async-capable worker pool; Playwright's sync API in tests)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(fn, *args)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-discovery") as pool:
        return pool.submit(anyio.run, fn, *args).result()


def resolve(server: McpServer, *, actor: Principal, purpose: str) -> _Config:
    """The server's settings with `${secret:…}`/`${var:…}` replaced (each reveal audited)."""
    config = _Config(transport=server.transport)

    def sub(text: str) -> str:
        resolved = resolve_references(text, environment=server.environment, purpose=purpose,
                                      actor=actor)
        config.secret_values.extend(resolved.secret_values)
        return resolved.text

    try:
        with transaction.atomic():
            if server.transport == McpServer.STDIO:
                config.command = sub(server.command)
                config.args = [sub(a) for a in server.args]
                config.env = {k: sub(v) for k, v in server.env.items()}
            else:
                config.url = sub(server.url)
                config.headers = {k: sub(v) for k, v in server.headers.items()}
    except Exception as exc:  # NotFound (deleted secret/variable), RevealNotAllowed
        raise DiscoveryFailed(config.redact(f"Could not resolve the server's configuration: "
                                            f"{_plain(exc)}")) from None
    return config


def stdio_parameters(config: _Config) -> StdioServerParameters:
    """Launch parameters for a stdio server: PATH plus the server's own (resolved) env, and the
    command wrapped so its exit status is reported on stderr."""
    env = {"PATH": os.environ.get("PATH", os.defpath), **config.env}
    return StdioServerParameters(command="/bin/sh",
                                 args=["-c", _SH_WRAPPER, config.command, *config.args],
                                 env=env)


# --- the MCP conversation ----------------------------------------------------------------------


async def _list_tools(config: _Config, errlog: TextIO, timeout: float) -> list[ToolDefinition]:
    with anyio.fail_after(timeout):
        async with _client(config, errlog, timeout) as client:
            found: list[ToolDefinition] = []
            cursor: str | None = None
            for _ in range(_MAX_PAGES):
                page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                found.extend(_definition(tool) for tool in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            return found


def _client(config: _Config, errlog: TextIO, timeout: float) -> Client:
    transport: AbstractAsyncContextManager[TransportStreams]
    if config.transport == McpServer.STDIO:
        path = {"PATH": os.environ.get("PATH", os.defpath), **config.env}["PATH"]
        if shutil.which(config.command, path=path) is None:
            where = "no such executable file" if "/" in config.command else "not on PATH"
            raise DiscoveryFailed(f"Command not found: {config.command!r} ({where}).")
        transport = stdio_client(stdio_parameters(config), errlog=errlog)
    else:
        _check_destination(config.url)
        transport = _http_transport(config, timeout)
    return Client(transport, mode="legacy", read_timeout_seconds=timeout)


def _check_destination(url: str) -> None:
    """The operator's rule for where MCP servers may be (STATION_OUTBOUND_NETWORKS), as a
    clear refusal before connecting; the transport judges the addresses it connects to."""
    try:
        egress.check_tool_url(url)
    except egress.NotPublic as exc:
        if exc.reason == "unresolvable":
            raise DiscoveryFailed(f"Cannot connect to the server ({url}): {exc.detail}.") \
                from None
        raise DiscoveryFailed(f"Refused to connect to the server ({url}): {exc.detail}; "
                              "link-local addresses such as the cloud metadata service are "
                              "never reached, nor private ones when the operator set "
                              "STATION_OUTBOUND_NETWORKS=public.") from None


@asynccontextmanager
async def _http_transport(config: _Config,
                          timeout: float) -> AsyncIterator[TransportStreams]:
    """Streamable HTTP with the server's (resolved) headers: 2.x takes them on the httpx2
    client it is given."""
    # The MCP SDK's client settings (create_mcp_http_client: no redirects followed by httpx),
    # on a transport that connects only to addresses the operator's rule allows.
    http = httpx2.AsyncClient(headers=config.headers or None,
                              timeout=httpx2.Timeout(timeout, read=timeout),
                              transport=egress.pinned_async_transport(
                                  config.url, egress.is_reachable_for_tools))

    async def note_errors(response: httpx2.Response) -> None:
        if response.status_code >= 400 and response.request.method != "DELETE":
            config.http_errors.append((response.status_code, response.reason_phrase))

    http.event_hooks["response"].append(note_errors)
    async with http, streamable_http_client(config.url, http_client=http) as streams:
        yield streams


def _definition(tool: mcp_types.Tool) -> ToolDefinition:
    """Plain JSON values only, so the hash is the same whatever the SDK's model classes."""
    def plain(value: Any) -> Any:
        return None if value is None else json.loads(json.dumps(value, default=str))

    annotations = (tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
                   if tool.annotations is not None else None)
    return ToolDefinition(name=tool.name, description=tool.description or "",
                          input_schema=plain(tool.input_schema) or {},
                          output_schema=plain(tool.output_schema),
                          annotations=annotations or None)


# --- errors ------------------------------------------------------------------------------------


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """Start-up failures arrive wrapped in (nested) ExceptionGroups: yield what is inside."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _plain(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _describe(exc: BaseException, config: _Config, stderr: str, timeout: float) -> str:
    leaves = list(_leaves(exc))
    exit_code = None
    if match := _EXIT_LINE.search(stderr):
        exit_code = int(match.group(1))
    tail = _EXIT_LINE.sub("", stderr).strip()[-_STDERR_TAIL:]
    where = (f"command {config.command!r}" if config.transport == McpServer.STDIO
             else f"{config.url}")

    def with_stderr(message: str) -> str:
        return f"{message} Its stderr ends with: {tail}" if tail else message

    for leaf in leaves:
        if isinstance(leaf, DiscoveryFailed):
            return str(leaf)
    if any(isinstance(leaf, TimeoutError) for leaf in leaves):
        if exit_code is not None:
            return with_stderr(f"The server ({where}) exited with code {exit_code} during "
                               "start-up.")
        return with_stderr(f"Timed out after {timeout:g}s connecting to the server ({where}) "
                           "and listing its tools.")
    if exit_code is not None:
        if exit_code == 127:
            return with_stderr(f"Command not found: {config.command!r} (exit code 127).")
        return with_stderr(f"The server ({where}) exited with code {exit_code} during "
                           "start-up.")
    if config.http_errors:
        status, reason = config.http_errors[0]
        return f"The server at {config.url} answered HTTP {status} {reason}."
    for leaf in leaves:
        if isinstance(leaf, httpx2.HTTPStatusError):
            return (f"The server at {config.url} answered HTTP {leaf.response.status_code} "
                    f"{leaf.response.reason_phrase}.")
        if isinstance(leaf, httpx2.TimeoutException):
            return f"Timed out after {timeout:g}s talking to {config.url}."
        if isinstance(leaf, httpx2.TransportError):
            return f"Could not connect to {config.url}: {_plain(leaf)}."
        if isinstance(leaf, FileNotFoundError):
            return f"Command not found: {config.command!r}."
        if isinstance(leaf, PermissionError):
            return f"Command {config.command!r} is not executable (permission denied)."
    for leaf in leaves:
        if isinstance(leaf, MCPError):
            if leaf.error.message == "Connection closed":
                return with_stderr(f"The server ({where}) closed the connection during "
                                   "start-up.")
            return with_stderr(f"MCP error {leaf.error.code} from the server ({where}): "
                               f"{leaf.error.message}")
    first = leaves[0] if leaves else exc
    return with_stderr(f"Could not list the server's tools ({where}): "
                       f"{type(first).__name__}: {_plain(first)}")


def _record_failure(server: McpServer, error: str, latency_ms: int | None) -> None:
    with transaction.atomic():
        current = McpServer.objects.filter(pk=server.pk).first()
        if current is not None:
            services.record_failure(server=current, error=error, latency_ms=latency_ms)
