"""The run page's live feed: server-sent events with the run's new steps and status changes.

How it works (docs/console.md, "Runs"):

- Access is checked once, when the stream opens (`org_view("runs.read")` plus the run's
  environment); the stream itself carries only ids and re-reads everything under the org's
  scope, so row-level security applies to every read.
- The generator LISTENs on `station_run_events` on its own autocommit psycopg connection (the
  app role's settings). The worker NOTIFYs inside the transaction that records a step or a
  status change, so a notification means "committed, read it now". On each notification for
  this run, and every POLL_SECONDS regardless (a lost notification, a LISTEN connection that
  broke), it re-reads the run and its steps after the last sequence sent, each time in one
  short transaction: nothing holds a transaction open while waiting.
- Every event carries `id:` = the last step sequence sent, so an EventSource that reconnects
  sends Last-Event-ID and receives only what it missed.
- A stream lasts at most STREAM_SECONDS (the browser reconnects), ends with an `end` event
  when the run is final, and sends a comment line when idle so a closed browser is noticed.
- Under gunicorn's gthread workers a stream occupies one worker thread. At most
  settings.LIVE_STREAMS_PER_PROCESS streams are held open per process; past that a request is
  answered at once with what is new and `retry:`, i.e. the page degrades to polling instead of
  starving ordinary pages of threads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from django.conf import settings
from django.db import connections, transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from psycopg import sql

from frontend.access import OrgRequest, org_view
from frontend.views.runs import readable_run, summary_context
from station.runs import selectors
from station.runs.events import CHANNEL
from station.runs.models import Run, RunStep, ToolApproval
from tenants import context
from tenants.authz import has_permission

log = logging.getLogger(__name__)

STREAM_SECONDS = 18.0  # below gunicorn's 20 s graceful timeout: restarts never cut a stream
POLL_SECONDS = 3.0
HEARTBEAT_SECONDS = 10.0
RECONNECT_MS = 1000
BUSY_RECONNECT_MS = 3000
STEPS_PER_READ = 100


# --- per-process capacity ----------------------------------------------------------------------

_lock = threading.Lock()
_open_streams = 0


def _take_slot() -> bool:
    global _open_streams
    with _lock:
        if _open_streams >= int(getattr(settings, "LIVE_STREAMS_PER_PROCESS", 2)):
            return False
        _open_streams += 1
        return True


def _release_slot() -> None:
    global _open_streams
    with _lock:
        _open_streams -= 1


def open_stream_count() -> int:
    return _open_streams


# --- the LISTEN connection ---------------------------------------------------------------------


class Listener:
    """An autocommit connection LISTENing for run events; `wait` returns True when one for
    `run_id` arrived. A broken connection turns into plain sleeping (the poll still runs)."""

    def __init__(self, run_id: uuid.UUID) -> None:
        self.run_id = str(run_id)
        self.conn: psycopg.Connection[Any] | None = None
        params = connections["default"].get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(key, None)
        params.setdefault("connect_timeout", 5)
        try:
            self.conn = psycopg.connect(**params, autocommit=True)
            self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        except psycopg.Error:
            log.warning("live run events: LISTEN failed; polling only", exc_info=True)
            self.close()

    def _ours(self, payload: str) -> bool:
        try:
            return bool(json.loads(payload).get("run") == self.run_id)
        except (ValueError, AttributeError):
            return False

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if self.conn is None:
                time.sleep(remaining)
                return False
            try:
                for notify in self.conn.notifies(timeout=remaining, stop_after=1):
                    if self._ours(notify.payload):
                        return True
                    break  # another run's event: keep waiting for ours
                else:
                    return False
            except psycopg.Error:
                log.warning("live run events: LISTEN connection lost; polling only",
                            exc_info=True)
                self.close()
        return False

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


# --- events ------------------------------------------------------------------------------------


def sse(event: str, data: Any, event_id: int) -> bytes:
    """One event; json.dumps escapes newlines, so the data is always a single line."""
    body = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event}\ndata: {body}\n\n".encode()


@dataclass
class RunStream:
    org_id: uuid.UUID
    org_slug: str
    run_id: uuid.UUID
    after: int
    can_cancel: bool
    can_approve: bool
    csrf_token: str

    def __post_init__(self) -> None:
        self.last_sequence = self.after
        self.last_state: tuple[Any, ...] | None = None
        self.gone = False

    def _read(self) -> tuple[Run | None, list[RunStep], ToolApproval | None]:
        """One short transaction under the org's scope (RLS applies)."""
        with context.org_context(self.org_id), transaction.atomic():
            run = (Run.objects.select_related("agent", "version", "environment")
                   .filter(pk=self.run_id).first())
            if run is None:
                return None, [], None
            steps = selectors.select_steps_after(run, self.last_sequence, limit=STEPS_PER_READ)
            approval = (selectors.select_pending_approval(run)
                        if run.status == Run.WAITING_APPROVAL else None)
        return run, steps, approval

    def _status(self, run: Run, approval: ToolApproval | None) -> dict[str, Any]:
        html = render_to_string("console/runs/_summary.html", summary_context(
            org_slug=self.org_slug, run=run, approval=approval, can_cancel=self.can_cancel,
            can_approve=self.can_approve, csrf_token=self.csrf_token))
        return {"status": run.status, "label": run.get_status_display(),
                "final": run.is_final, "steps": run.step_count,
                "tokens": run.total_tokens, "html": html}

    def updates(self) -> Iterator[bytes]:
        """Events for whatever changed since the last call; ends with `end` when final."""
        while True:
            run, steps, approval = self._read()
            if run is None:  # deleted with its agent: nothing more will come
                self.gone = True
                yield sse("end", {"status": "gone"}, self.last_sequence)
                return
            for step in steps:
                self.last_sequence = step.sequence
                html = render_to_string("console/runs/_step.html", {"step": step})
                yield sse("step", {"sequence": step.sequence, "html": html}, step.sequence)
            if len(steps) == STEPS_PER_READ:
                continue  # more waiting: read on before reporting the status
            state = (run.status, run.step_count, run.total_tokens, run.cancel_requested,
                     approval.pk if approval else None, run.finished_at)
            # A final run's status is sent only once all its steps were: the page never
            # closes with a step missing.
            if state != self.last_state:
                self.last_state = state
                yield sse("status", self._status(run, approval), self.last_sequence)
            if run.is_final:
                yield sse("end", {"status": run.status}, self.last_sequence)
            return

    def finished(self) -> bool:
        return self.gone or (self.last_state is not None and self.last_state[0] in Run.FINAL)

    def stream(self) -> Iterator[bytes]:
        if not _take_slot():
            # Busy: answer now with what is new, and let the browser ask again shortly.
            yield f"retry: {BUSY_RECONNECT_MS}\n\n".encode()
            yield from self.updates()
            return
        listener: Listener | None = None
        try:
            yield f"retry: {RECONNECT_MS}\n\n".encode()
            listener = Listener(self.run_id)  # before the first read: no event falls between
            deadline = time.monotonic() + STREAM_SECONDS
            last_sent = time.monotonic()
            while True:
                sent = False
                for chunk in self.updates():
                    sent = True
                    yield chunk
                if self.finished():
                    return
                now = time.monotonic()
                if sent:
                    last_sent = now
                elif now - last_sent >= HEARTBEAT_SECONDS:
                    last_sent = now
                    yield b": heartbeat\n\n"
                if now >= deadline:
                    return  # EventSource reconnects with Last-Event-ID
                listener.wait(min(POLL_SECONDS, deadline - now))
        finally:
            if listener is not None:
                listener.close()
            _release_slot()


def _after(request: OrgRequest) -> int:
    """Where to resume: Last-Event-ID (a reconnecting EventSource), else ?after=."""
    for value in (request.headers.get("Last-Event-ID"), request.GET.get("after")):
        if value and value.isdigit() and len(value) < 10:
            return int(value)
    return 0


@org_view("runs.read")
def run_events(request: OrgRequest, run_id: uuid.UUID) -> HttpResponse:
    run = readable_run(request, run_id)  # 404 unless readable here; checked once, at the start
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET"})
    env = run.environment
    stream = RunStream(
        org_id=request.org.pk, org_slug=request.org.slug, run_id=run.pk,
        after=_after(request),
        can_cancel=has_permission(request.principal, "runs.cancel", request.org, env),
        can_approve=has_permission(request.principal, "runs.approve", request.org, env),
        csrf_token=get_token(request))
    response = StreamingHttpResponse(stream.stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx and friends: do not buffer the stream
    # org_view is typed for HttpResponse; Django serves both kinds alike.
    return cast(HttpResponse, response)
