"""MCP sessions for runs (worker side): a run's sessions, and the warm ones a worker process
keeps between runs.

A run connects to each server it calls on its first tool call and keeps that session until it
ends. What happens then depends on the server's `reuse_sessions` flag (off by default):

- off: the session is closed. Every run starts from a fresh session (a stdio server's fresh
  process), so nothing one run leaves in a server's memory reaches another run;
- on (an admin's statement that the server keeps no state between calls), and the operator's
  kill switch `MCP_SESSION_REUSE` on as well: a session that behaved is handed back to the
  process's `WarmSessions`, and the next run of the *same* server may take it instead of
  connecting again, which spares the connect + initialize handshake (and a stdio server's
  process start) on every run.

A warm session is keyed by everything that could make it another session: the org, the server
row and its revision (`updated_at`: any change to the row, the flag toggled off and on
included, retires the sessions opened before it), the flag itself, a digest of its settings
as resolved for the run (so a changed setting, secret or variable gives another key) and a
digest of the server's tool pins. Every run still resolves the settings itself (each secret
reveal audited with that run as the actor) before it can take a session; no session is ever
shared by two runs at once.

Whether fresh or warm, a run's session lists the server's live tools when the run takes it:
a tool the server now describes differently from what an admin approved is refused even if
nobody has re-run discovery (tool poisoning), exactly as when every run connected anew. That
list is also the health check: a warm session that fails it is closed and replaced.

The async SDK runs in one blocking portal per process (a private event-loop thread), so the
run loop itself stays synchronous Django code.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import hashlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from mcp import MCPError
from mcp import types as mcp_types

from station.tools import discovery
from station.tools.models import McpServer
from tenants.authz import Principal

log = logging.getLogger(__name__)


class ToolCallFailed(Exception):
    """The call did not produce a tool result (connect failure, timeout, protocol error)."""


# The worker being told to stop, not a server failing: Celery's soft time limit (an Exception,
# raised in the main thread while it waits on the event-loop thread), a signal, interpreter
# exit, or the event-loop thread cancelling the call (its portal stopping at shutdown). The
# session is discarded and these propagate; they never become a tool error.
STOPS: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded, KeyboardInterrupt, SystemExit,
                                          asyncio.CancelledError,
                                          concurrent.futures.CancelledError)


def _stop_in(exc: BaseException) -> BaseException | None:
    """The stop inside `exc` (itself, or a leaf of the SDK's exception groups), if any."""
    return next((leaf for leaf in discovery._leaves(exc) if isinstance(leaf, STOPS)), None)


def _stops_through(exc: BaseException, then: Callable[[], object] = lambda: None) -> None:
    """Called from an `except BaseException` clause: when `exc` is a stop or carries one, run
    `then` (discard what the stop interrupted) and raise the stop; re-raise anything else
    that is not an error a caller handles (KeyboardInterrupt and friends are stops already).
    Returns only for an ordinary error."""
    stop = _stop_in(exc)
    if stop is not None:
        then()
        if stop is exc:
            raise exc
        raise stop from None
    if not isinstance(exc, Exception | BaseExceptionGroup):
        raise exc


def _every(actions: Iterable[Callable[[], object]]) -> None:
    """Carry out every action (closing or handing back a session) even when a stop arrives
    during one; the first stop is raised once all are done (a stdio server's process must
    not outlive its session)."""
    stop: BaseException | None = None
    for action in actions:
        try:
            action()
        except BaseException as exc:  # only stops leave `close` and `give_back`
            stop = stop or exc
    if stop is not None:
        raise stop


def _close_each(sessions: Iterable[_Session]) -> None:
    _every(session.close for session in sessions)


@dataclass
class ToolResult:
    text: str
    is_error: bool
    structured: Any = None
    content: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SessionKey:
    """What a warm session may be reused for: one org, one server row at one revision, with
    reuse allowed on it, the same resolved settings (digest) and the same tool pins (digest).
    Never compared across orgs."""

    org_id: uuid.UUID
    server_id: uuid.UUID
    config: str
    pins: str
    # The server's `reuse_sessions` flag and the row's revision: a session opened under one
    # value of the flag is never taken under another, nor after the flag went off and on.
    reuse: bool = False
    revision: str = ""

    @classmethod
    def for_server(cls, server: McpServer, config: str, pins: str) -> SessionKey:
        return cls(server.organization_id, server.pk, config, pins,
                   reuse=server.reuse_sessions, revision=server.updated_at.isoformat())

    @property
    def poolable(self) -> bool:
        """Whether a session under this key may serve more than one run: the server opted in
        and the operator's kill switch is on."""
        return self.reuse and bool(settings.MCP_SESSION_REUSE)


def pins_digest(pins: dict[str, str]) -> str:
    """Digest of a server's tool pins (tool name → approved hash)."""
    return hashlib.sha256(repr(sorted(pins.items())).encode()).hexdigest()


@dataclass(eq=False)
class _Session:
    key: SessionKey
    client: Any
    closer: Any  # the portal-wrapped async context manager; exiting it closes the session
    errlog: Any
    live_hashes: dict[str, str] = field(default_factory=dict)
    opened_at: float = field(default_factory=time.monotonic)
    idle_since: float = 0.0
    reusable: bool = True  # False once a call timed out or failed oddly: never handed on

    def close(self) -> None:
        """Close the session; a server that fails on shutdown fails nothing (logged), but the
        worker being told to stop meanwhile is raised, not swallowed."""
        try:
            self.closer.__exit__(None, None, None)
        except BaseException as exc:
            _stops_through(exc)
            log.warning("closing an MCP session failed", exc_info=True)
        finally:
            with suppress(OSError):
                self.errlog.close()


class WarmSessions:
    """The sessions a worker process keeps between runs, and the event-loop thread they live
    in. Bounded (MCP_SESSION_POOL_SIZE idle sessions, least recently used closed first), with
    an idle timeout and a maximum age; closed when the worker process shuts down. A session
    is checked out by one run at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Session] = []  # least recently returned first
        self._stack: ExitStack | None = None
        self._portal: BlockingPortal | None = None
        self._pid = os.getpid()

    def _forked(self) -> None:
        """In a process forked after sessions were opened (a prefork pool child), the parent's
        event-loop thread and sessions do not exist: start afresh without touching them."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._idle, self._stack, self._portal = [], None, None

    def portal(self) -> BlockingPortal:
        with self._lock:
            self._forked()
            if self._portal is None:
                self._stack = ExitStack()
                self._portal = self._stack.enter_context(start_blocking_portal())
                stop = threading.Event()
                self._stack.callback(stop.set)
                threading.Thread(target=self._sweep_until, args=(stop,), daemon=True,
                                 name="mcp-session-sweeper").start()
            return self._portal

    def _sweep_until(self, stop: threading.Event) -> None:
        """Close sessions past their idle time even when no run comes to notice (an idle
        stdio server's process must not linger)."""
        while not stop.wait(max(1.0, min(30.0, settings.MCP_SESSION_IDLE_SECONDS / 2))):
            try:
                self.sweep()
            except Exception:  # never let the sweeper die on one bad close
                log.warning("sweeping idle MCP sessions failed", exc_info=True)

    def sweep(self) -> int:
        """Close idle sessions past their idle time or age; returns how many."""
        now = time.monotonic()
        with self._lock:
            if self._pid != os.getpid():
                return 0
            expired = [s for s in self._idle if self._expired(s, now)]
            self._idle = [s for s in self._idle if s not in expired]
        _close_each(expired)
        return len(expired)

    def take(self, key: SessionKey) -> _Session | None:
        """An idle session for exactly `key` when its server may be pooled, or None. Idle
        sessions of the same org and server with another key (settings, a secret, the pins or
        the reuse flag changed since) are closed."""
        now = time.monotonic()
        found: _Session | None = None
        stale: list[_Session] = []
        with self._lock:
            self._forked()
            keep: list[_Session] = []
            for session in self._idle:
                same_server = (session.key.org_id, session.key.server_id) == (key.org_id,
                                                                               key.server_id)
                if self._expired(session, now) or (same_server and session.key != key):
                    stale.append(session)
                else:
                    keep.append(session)
            for i in range(len(keep) - 1, -1, -1):  # the most recently used
                if key.poolable and keep[i].key == key:
                    found = keep.pop(i)
                    break
            self._idle = keep
        try:
            _close_each(stale)
        except BaseException:
            if found is not None:  # healthy and not handed out: back where it was
                with self._lock:
                    self._idle.append(found)
            raise
        return found

    def give_back(self, session: _Session) -> None:
        """Keep a session that behaved for a later run, or close it."""
        now = time.monotonic()
        closing: list[_Session] = []
        with self._lock:
            reuse = (session.key.poolable and session.reusable
                     and self._pid == os.getpid() and not self._expired(session, now))
            if reuse:
                session.idle_since = now
                self._idle.append(session)
                while len(self._idle) > max(settings.MCP_SESSION_POOL_SIZE, 0):
                    closing.append(self._idle.pop(0))
            else:
                closing.append(session)
        _close_each(closing)

    def _expired(self, session: _Session, now: float) -> bool:
        return (now - session.opened_at > settings.MCP_SESSION_MAX_AGE_SECONDS
                or (session.idle_since > 0
                    and now - session.idle_since > settings.MCP_SESSION_IDLE_SECONDS))

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle) if self._pid == os.getpid() else 0

    def close_all(self, *, stop_portal: bool = False) -> None:
        """Close every idle session (and, at process exit, the event-loop thread)."""
        with self._lock:
            if self._pid != os.getpid():
                return
            idle, self._idle = self._idle, []
            stack = self._stack if stop_portal else None
            portal = self._portal
            if stop_portal:
                self._stack, self._portal = None, None
        if stack is None:
            _close_each(idle)
        else:  # at process exit: the closes too are bounded by the stop's wait
            _stop_event_loop(portal, stack, idle)


def _stop_event_loop(portal: BlockingPortal | None, stack: ExitStack,
                     idle: list[_Session], wait: float = 15.0) -> None:
    """Close the idle sessions and stop the event-loop thread at process exit, cancelling
    what still runs in it (a session some run never handed back: left alone it would keep
    the loop, and the process, alive forever); all within a bounded wait (a server that
    hangs on shutdown must not hold the worker's exit)."""
    def stop() -> None:
        try:
            with suppress(BaseException):
                _close_each(idle)
            if portal is not None:
                with suppress(RuntimeError):  # already stopped
                    portal.call(portal.stop, True)
            stack.close()
        except Exception:
            log.warning("stopping the MCP event-loop thread failed", exc_info=True)

    stopper = threading.Thread(target=stop, daemon=True, name="mcp-event-loop-stop")
    stopper.start()
    stopper.join(wait)
    if stopper.is_alive():
        log.warning("the MCP event-loop thread did not stop within %gs; exiting anyway", wait)


warm = WarmSessions()
atexit.register(warm.close_all, stop_portal=True)


class SessionPool:
    """The MCP sessions of one run: taken (warm) or opened on first use, handed back to
    `warm` when the run ends (`close`), or closed when they misbehaved."""

    def __init__(self, *, actor: Principal, purpose: str) -> None:
        self.actor = actor
        self.purpose = purpose
        self.secret_values: list[str] = []
        self._sessions: dict[uuid.UUID, _Session] = {}
        self._dropped: list[_Session] = []

    def __enter__(self) -> SessionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, *, reuse: bool = True) -> None:
        """End of the run: sessions that behaved go back to the warm pool (with `reuse`; the
        pool keeps only those of servers that opt in), the others are closed."""
        sessions, self._sessions = list(self._sessions.values()), {}
        dropped, self._dropped = self._dropped, []
        done: list[Callable[[], object]] = [s.close for s in dropped]
        done += [partial(warm.give_back, s) if reuse else s.close for s in sessions]
        _every(done)

    def _drop(self, server: McpServer) -> _Session | None:
        """Forget a broken session (closed when the run ends: not from inside its own
        failing call); the next call to the server connects again."""
        session = self._sessions.pop(server.pk, None)
        if session is not None:
            self._discard(session)
        return session

    def _discard(self, session: _Session) -> None:
        """Never hand `session` on; it is closed when the run ends (`close`)."""
        session.reusable = False
        self._dropped.append(session)

    def _session(self, server: McpServer, pins: str = "") -> _Session:
        if server.pk in self._sessions:
            return self._sessions[server.pk]
        # Resolved for this run whether or not a warm session is taken: each reveal is
        # audited with this run as the actor, and the result is part of the key.
        config = discovery.resolve(server, actor=self.actor, purpose=self.purpose)
        self.secret_values.extend(config.secret_values)
        key = SessionKey.for_server(server, config.fingerprint(), pins)
        timeout = float(settings.MCP_TIMEOUT_SECONDS)
        portal = warm.portal()
        # Also for a server that is not pooled: idle sessions of it under another key (the
        # flag was on until now) are closed rather than left to expire.
        session = warm.take(key)
        if session is not None:
            taken = session
            # Its stderr from now on is this run's; earlier runs' output is not shown to it.
            session.errlog.seek(0)
            session.errlog.truncate()
            try:
                tools = portal.call(_list_all, session.client, timeout)
            except BaseException as exc:
                _stops_through(exc, then=lambda: self._discard(taken))
                # Dead process, expired HTTP session: open a fresh one.
                log.info("a warm MCP session failed its check; reconnecting",
                         extra={"server": server.name})
                session.close()
                session = None
            else:
                session.live_hashes = {t.name: t.content_hash for t in tools}
        reused = session is not None
        if session is None:
            session = self._open(key, config, portal, timeout)
        log.debug("MCP server %s: %s session for %s", server.name,
                  "warm" if reused else "new", self.purpose)
        self._sessions[server.pk] = session
        return session

    def _open(self, key: SessionKey, config: Any, portal: BlockingPortal,
              timeout: float) -> _Session:
        errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8",  # noqa: SIM115
                                        errors="replace")
        closer: Any = None
        try:
            # Connecting is bounded by the client's read timeout (initialize is a request);
            # a cancel scope around entering would outlive its task group (anyio forbids it).
            closer = portal.wrap_async_context_manager(discovery._client(config, errlog,
                                                                         timeout))
            client = closer.__enter__()
        except BaseException as exc:
            def abandon() -> None:
                _abandon(closer)
                errlog.close()
            _stops_through(exc, then=abandon)
            errlog.seek(0)
            message = config.redact(discovery._describe(exc, config, errlog.read(), timeout))
            errlog.close()
            raise ToolCallFailed(message) from None
        session = _Session(key, client, closer, errlog)
        try:
            tools = portal.call(_list_all, client, timeout)
        except BaseException as exc:
            _stops_through(exc, then=lambda: self._discard(session))
            errlog.seek(0)
            message = config.redact(discovery._describe(exc, config, errlog.read(), timeout))
            session.close()
            raise ToolCallFailed(message) from None
        session.live_hashes = {t.name: t.content_hash for t in tools}
        return session

    def live_hash(self, server: McpServer, tool: str, pins: str = "") -> str | None:
        return self._session(server, pins).live_hashes.get(tool)

    def call(self, server: McpServer, tool: str, arguments: dict[str, Any],
             timeout: float) -> ToolResult:
        session = self._session(server)
        portal = warm.portal()
        try:
            result: mcp_types.CallToolResult = portal.call(_call, session.client, tool,
                                                            arguments, timeout)
        except MCPError as exc:
            if exc.error.code == -32001 or "timed out" in exc.error.message.lower():
                # Still usable for this run (the SDK's word), but a server that let a call
                # hang is not handed to another run.
                session.reusable = False
                raise ToolCallFailed(f"The tool call timed out after {timeout:g}s.") from None
            if exc.error.message == "Connection closed":
                self._drop(server)
                session.errlog.seek(0)
                tail = session.errlog.read().strip()[-600:]
                raise ToolCallFailed(
                    "The MCP server closed the connection during the call (it may have "
                    f"crashed).{' Its stderr ends with: ' + tail if tail else ''}") from None
            session.reusable = False
            raise ToolCallFailed(f"MCP error {exc.error.code}: {exc.error.message}") from None
        except TimeoutError:
            session.reusable = False
            raise ToolCallFailed(f"The tool call timed out after {timeout:g}s.") from None
        except BaseException as exc:  # malformed output, broken pipes, … or a stop
            # A stop may leave the call in flight in the event-loop thread: the session is
            # dropped (closed when the run ends), never handed on.
            self._drop(server)
            _stops_through(exc)
            first = next(iter(discovery._leaves(exc)), exc)
            raise ToolCallFailed(f"The MCP server's answer could not be used: "
                                 f"{type(first).__name__}: {discovery._plain(first)}") from None
        return _result(result)


def _abandon(closer: Any) -> None:
    """Cancel a connection whose opening this thread stopped waiting for: the connect goes on
    in the event-loop thread and, once done, would hold the server (a stdio process) open
    forever, and the portal could then never stop at worker exit. anyio keeps that task's
    future as `_exit_future` (a private name, hence the getattr); cancelling it cancels the
    task, whose clean-up closes whatever was opened."""
    task = getattr(closer, "_exit_future", None)
    if task is not None:
        task.cancel()


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
