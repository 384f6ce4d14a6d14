"""The run loop (worker side): model call → tool calls → repeat, until a final answer or a
limit, recording every step.

The conversation is rebuilt from the recorded steps at the start of every attempt, so a run
resumed after an approval, or retried after its worker died, continues where its last
recorded step left it: no step is recorded twice (`(run, sequence)` is unique, and a step is
written only while this worker still holds the run). A tool call in flight when a worker dies
is made again on retry (at-least-once, documented in docs/runs.md).

Secret values revealed for the run (provider key, MCP server settings) are redacted from
everything stored. Reveals are audited with the run as the actor.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from station.providers.base import (
    LLMProvider,
    Message,
    ModelRequest,
    ProviderError,
    ToolCall,
    ToolSpec,
)
from station.runs import lifecycle
from station.runs.mcp_pool import SessionPool, ToolCallFailed, pins_digest
from station.runs.models import Run, RunStep, ToolApproval
from station.tools.models import McpServer, Tool, ToolPolicy
from station.tools.policies import effects_for, policy_for
from station.vault.models import Variable
from station.vault.services import REFERENCE, redact
from tenants import context
from tenants.authz import Principal

log = logging.getLogger(__name__)

TOOL_NAME_SEPARATOR = "__"


def worker_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def llm_tool_name(server: str, tool: str) -> str:
    """Model-facing tool names allow only [A-Za-z0-9_-]: `server__tool`."""
    return f"{server}{TOOL_NAME_SEPARATOR}{tool}"


@dataclass
class Outcome:
    status: str  # a final status, or WAITING_APPROVAL / "lost"
    output: str = ""
    error: str = ""
    recorded: bool = False  # already finished with the last step (nothing left to write)


class _Stop(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class Heartbeat(threading.Thread):
    """Refreshes the run's heartbeat on its own connection while the loop works (a model or
    tool call can take longer than the stale threshold), and notices cancel requests."""

    def __init__(self, run: Run, worker: str) -> None:
        super().__init__(name=f"heartbeat-{run.pk}", daemon=True)
        self.run_id, self.org_id, self.worker = run.pk, run.organization_id, worker
        self.cancel_requested = threading.Event()
        self.lost = threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            with context.org_context(self.org_id):
                while not self._stop_event.wait(settings.RUN_HEARTBEAT_SECONDS):
                    state = lifecycle.heartbeat(self.run_id, self.worker)
                    if state is None:
                        self.lost.set()
                        return
                    if state:
                        self.cancel_requested.set()
        except Exception:  # a failed heartbeat only makes the run look stale
            log.exception("heartbeat failed", extra={"run_id": str(self.run_id)})
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def execute(run_id: uuid.UUID) -> str:
    """Claim and execute one run; returns what happened ("skipped" when not claimed)."""
    worker = worker_label()
    run = lifecycle.claim(run_id, worker)
    if run is None:
        return "skipped"
    beat = Heartbeat(run, worker)
    beat.start()
    loop = _Loop(run, worker, beat)
    crashed = True
    try:
        outcome = loop.run()
        crashed = False
    except SoftTimeLimitExceeded:
        # Celery's backstop (the run task's soft time limit, above any agent's max_seconds):
        # the run is over, and says why rather than "internal error".
        log.error("run task reached its soft time limit", extra={"run_id": str(run_id)})
        outcome = Outcome(Run.FAILED, error="The run was stopped: its worker task reached "
                                            "the time limit for a run task.")
    except Exception as exc:  # a bug must end the run visibly, never leave it running
        log.exception("run loop crashed", extra={"run_id": str(run_id)})
        outcome = Outcome(Run.FAILED, error=loop.redact(
            f"Internal error in the run loop: {type(exc).__name__}: {exc}"))
    finally:
        beat.stop()
        # Sessions of a run that crashed are closed, not handed to the next run. A soft
        # time limit arriving meanwhile (a server hanging on shutdown) must not keep the
        # outcome from being recorded: the reaper would run a finished run again.
        try:
            loop.pool.close(reuse=not crashed)
        except SoftTimeLimitExceeded:
            log.error("soft time limit while closing a run's MCP sessions",
                      extra={"run_id": str(run_id)})
    if outcome.status in Run.FINAL and not outcome.recorded:
        lifecycle.complete(run, worker, outcome.status, output=loop.redact(outcome.output),
                           error=loop.redact(outcome.error))
    return outcome.status


class _Loop:
    def __init__(self, run: Run, worker: str, beat: Heartbeat) -> None:
        self.run_row = run
        self.worker = worker
        self.beat = beat
        self.definition: dict[str, Any] = run.version.definition
        self.principal = Principal.for_run(run.pk, run.agent.name)
        self.purpose = f"run {run.pk} of agent {run.agent.name}"
        self.pool = SessionPool(actor=self.principal, purpose=self.purpose)
        self.provider: LLMProvider | None = None
        self.secret_values: list[str] = []
        self.sequence = 0
        # cancel_requested as read under the run's row lock by the claim or the last step
        # write, while no model or tool call has happened since (None: unknown). A
        # checkpoint right after a step needs no query of its own.
        self._cancel_known: bool | None = run.cancel_requested
        started = run.started_at or timezone.now()
        self.deadline = started.timestamp() + int(self.definition.get("max_seconds") or 300)

    # --- helpers ---------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return redact(text, [*self.secret_values, *self.pool.secret_values])

    def _clean(self, value: Any) -> Any:
        """Redact every string inside a JSON value."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self._clean(v) for v in value]
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        return value

    def _remaining(self) -> float:
        return self.deadline - time.time()

    def _checkpoint(self) -> None:
        """Between steps: stop for a cancel, a lost claim, or the wall-time limit."""
        if self.beat.lost.is_set():
            raise _Stop(Outcome("lost"))
        cancel = self.beat.cancel_requested.is_set() or bool(self._cancel_known)
        if not cancel and self._cancel_known is None:
            with transaction.atomic():
                cancel = bool(Run.objects.filter(pk=self.run_row.pk)
                              .values_list("cancel_requested", flat=True).first())
        if cancel:
            raise _Stop(Outcome(Run.CANCELLED, error="Cancelled on request."))
        if self._remaining() <= 0:
            raise _Stop(Outcome(Run.TIMED_OUT, error=self._timeout_error()))

    def _timeout_error(self) -> str:
        return (f"The run exceeded its wall-time limit of "
                f"{self.definition.get('max_seconds')}s.")

    def _record(self, ending: lifecycle.Ending | None = None, **fields: Any) -> RunStep:
        for key in ("input", "output"):
            fields[key] = self._clean(fields.get(key, {}))
        fields["error"] = self.redact(fields.get("error", ""))
        step = lifecycle.record_step(self.run_row, self.worker, ending=ending, **fields)
        if step is None:
            raise _Stop(Outcome("lost"))
        self._cancel_known = self.run_row.cancel_requested  # read under the row lock
        return step

    # --- setup -----------------------------------------------------------------------------

    def _provider(self) -> LLMProvider:
        """Call inside the setup transaction: the lookup and the audited reveal commit
        together, and a failure (raised as _Stop) rolls both back."""
        from station.providers import registry

        try:
            provider, revealed = registry.connect(self.run_row.environment,
                                                  str(self.definition["provider"]),
                                                  actor=self.principal, purpose=self.purpose)
        except Exception as exc:  # ProviderError, NotFound (deleted), RevealNotAllowed
            raise _Stop(Outcome(Run.FAILED, error=f"Model provider: {exc}")) from None
        self.secret_values.extend(revealed)
        return provider

    def _tools(self) -> tuple[list[ToolSpec], dict[str, tuple[str, str]]]:
        """The model's tool list: allowed by the version, not denied in the environment, and
        currently approved. Returns the specs and model name → (server, tool). Call inside
        the setup transaction (two queries, however many tools are allowed)."""
        specs: list[ToolSpec] = []
        names: dict[str, tuple[str, str]] = {}
        pairs = [(server, tool) for server, _, tool in
                 (str(t).partition("/") for t in self.definition.get("allowed_tools", []))]
        for server_name, tool_name in pairs:
            names[llm_tool_name(server_name, tool_name)] = (server_name, tool_name)
        if not pairs:
            return specs, names
        found = {(t.server.name, t.name): t for t in Tool.objects.filter(
            server__environment=self.run_row.environment, server__enabled=True,
            server__name__in={s for s, _ in pairs}, name__in={t for _, t in pairs},
        ).select_related("server")}
        effects = effects_for(self.run_row.environment, pairs)
        for server_name, tool_name in pairs:
            tool = found.get((server_name, tool_name))
            if (tool is None or not tool.callable
                    or effects[(server_name, tool_name)] == ToolPolicy.DENY):
                continue
            specs.append(ToolSpec(llm_tool_name(server_name, tool_name), tool.description,
                                  tool.input_schema or {"type": "object"}))
        return specs, names

    def _instructions(self) -> str:
        """The system prompt with `${var:NAME}` replaced by the environment's variables.
        `${secret:…}` is never resolved here: a secret must not be sent to a model."""
        text = str(self.definition.get("instructions") or "")
        names = {m.group(2) for m in REFERENCE.finditer(text) if m.group(1) == "var"}
        if not names:
            return text
        values = dict(Variable.objects.filter(environment=self.run_row.environment,  # setup txn
                                              name__in=names).values_list("name", "value"))
        missing = sorted(names - set(values))
        if missing:
            raise _Stop(Outcome(Run.FAILED, error="The instructions use variable"
                                f"{'s' * (len(missing) > 1)} {', '.join(missing)}, missing in "
                                f"{self.run_row.environment.slug}."))
        return REFERENCE.sub(lambda m: values[m.group(2)] if m.group(1) == "var"
                             else m.group(0), text)

    def _conversation(self, steps: list[RunStep]) -> list[Message]:
        data = self.run_row.input
        if isinstance(data, dict) and set(data) == {"message"} and isinstance(data["message"],
                                                                              str):
            user = data["message"]
        else:
            user = json.dumps(data, ensure_ascii=False, sort_keys=True)
        messages = [Message("system", self._instructions()), Message("user", user)]
        for step in steps:
            if step.kind == RunStep.MODEL and step.output.get("message"):
                messages.append(Message.from_json(step.output["message"]))
            elif step.kind == RunStep.TOOL:
                messages.append(Message("tool", str(step.output.get("text", step.error)),
                                        tool_call_id=step.tool_call_id,
                                        is_error=bool(step.error or step.output.get("is_error"))))
        return messages

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> Outcome:
        try:
            return self._run()
        except _Stop as stop:
            return stop.outcome
        finally:
            if self.provider is not None:  # its HTTP connections end with the run
                self.provider.close()

    def _run(self) -> Outcome:
        # Everything the run reads to start, in one short transaction (no I/O inside).
        with transaction.atomic():
            steps = list(RunStep.objects.filter(run=self.run_row).order_by("sequence"))
            messages = self._conversation(steps)
            provider = self.provider = self._provider()
            specs, names = self._tools()
        self.sequence = steps[-1].sequence if steps else 0
        model_calls = sum(1 for s in steps if s.kind == RunStep.MODEL)
        max_steps = int(self.definition.get("max_steps") or 10)
        max_tokens = int(self.definition.get("max_tokens") or 100_000)
        while True:
            self._checkpoint()
            last = messages[-1]
            if last.role == "assistant" and last.tool_calls:
                answered = {m.tool_call_id for m in messages if m.role == "tool"}
                pending = [c for c in last.tool_calls if c.id not in answered]
                if pending:
                    for call in pending:
                        self._checkpoint()
                        messages.append(self._tool_call(call, names))
                    continue
            elif last.role == "assistant":
                return Outcome(Run.SUCCEEDED, output=last.content)
            if model_calls >= max_steps:
                return Outcome(Run.FAILED, error=f"The agent reached its limit of {max_steps} "
                                                 "model calls without a final answer.")
            if self.run_row.total_tokens >= max_tokens:
                return Outcome(Run.FAILED, error=f"The agent used {self.run_row.total_tokens} "
                                                 f"tokens, over its limit of {max_tokens}.")
            messages.append(self._model_call(provider, messages, specs))
            model_calls += 1

    def _model_call(self, provider: LLMProvider, messages: list[Message],
                    specs: list[ToolSpec]) -> Message:
        request = ModelRequest(model=str(self.definition.get("model", "")), messages=messages,
                               tools=specs, parameters=dict(self.definition.get("parameters")
                                                             or {}))
        started_at, started = timezone.now(), time.monotonic()
        self._cancel_known = None  # the call takes time: a cancel may arrive meanwhile
        try:
            response = provider.complete(request)
        except ProviderError as exc:
            self.sequence += 1
            self._record(sequence=self.sequence, kind=RunStep.MODEL, started_at=started_at,
                         input={"model": request.model, "messages": len(messages)},
                         error=f"{exc.kind}: {exc}",
                         latency_ms=int((time.monotonic() - started) * 1000))
            raise _Stop(Outcome(Run.FAILED, error=f"The model call failed ({exc.kind}): "
                                                  f"{exc}")) from None
        self.sequence += 1
        message = Message.from_json(self._clean(response.message.to_json()))
        ending = None
        if message.role == "assistant" and not message.tool_calls:
            # A final answer: the step and the run's end are one transaction. The same
            # checks as the checkpoint that would otherwise come next (a cancel is seen
            # under the row lock by record_step; a lost claim writes nothing).
            if self.beat.lost.is_set():
                raise _Stop(Outcome("lost"))
            ending = (lifecycle.Ending(Run.TIMED_OUT, error=self._timeout_error())
                      if self._remaining() <= 0 else
                      lifecycle.Ending(Run.SUCCEEDED, output=self.redact(message.content)))
        self._record(ending, sequence=self.sequence, kind=RunStep.MODEL, started_at=started_at,
                     input={"model": request.model, "messages": len(messages),
                            "tools": [s.name for s in specs]},
                     output={"message": response.message.to_json(),
                             "stop_reason": response.stop_reason, "model": response.model},
                     input_tokens=response.usage.input_tokens,
                     output_tokens=response.usage.output_tokens,
                     latency_ms=int((time.monotonic() - started) * 1000))
        if ending is not None:
            raise _Stop(Outcome(self.run_row.status, recorded=True))
        # Stored redacted; the conversation goes on with what was stored.
        return message

    def _tool_call(self, call: ToolCall, names: dict[str, tuple[str, str]]) -> Message:
        server_name, tool_name = names.get(call.name, ("", call.name))
        started_at, started = timezone.now(), time.monotonic()
        self._cancel_known = None  # the call takes time: a cancel may arrive meanwhile

        def record(output: dict[str, Any], error: str = "") -> Message:
            self.sequence += 1
            self._record(sequence=self.sequence, kind=RunStep.TOOL, started_at=started_at,
                         tool_server=server_name, tool_name=tool_name, tool_call_id=call.id,
                         input={"arguments": call.arguments}, output=output, error=error,
                         latency_ms=int((time.monotonic() - started) * 1000))
            text = self.redact(error or str(output.get("text", "")))
            return Message("tool", text, tool_call_id=call.id,
                           is_error=bool(error or output.get("is_error")))

        if call.name not in names:
            return record({}, f"The agent may not call {call.name!r}: it is not in this "
                              "version's allowed tools.")
        label = f"{server_name}/{tool_name}"
        with transaction.atomic():
            server = McpServer.objects.filter(environment=self.run_row.environment,
                                              name=server_name).first()
            # Every pin of the server (light columns only): the one called, and the digest
            # a warm session is keyed by.
            pinned = ({t.name: t for t in Tool.objects.filter(server=server).only(
                "name", "status", "content_hash", "approved_hash")}
                if server is not None else {})
            tool = pinned.get(tool_name)
            policy = policy_for(self.run_row.environment, server_name, tool_name)
            approval = (ToolApproval.objects.filter(run=self.run_row,
                                                    tool_call_id=call.id).first()
                        if policy == ToolPolicy.REQUIRE_APPROVAL else None)
        if server is not None:
            server.environment = self.run_row.environment  # resolving needs it: no re-read
        if server is None or not server.enabled:
            return record({}, f"The MCP server {server_name!r} does not exist or is disabled "
                              f"in {self.run_row.environment.slug}.")
        if tool is None or not tool.callable:
            state = "unknown" if tool is None else tool.get_status_display()
            return record({}, f"The tool {label} is not callable ({state}); its current "
                              "definition must be approved first.")
        if policy == ToolPolicy.DENY:
            return record({}, f"The tool {label} is denied by a policy of this environment.")
        if policy == ToolPolicy.REQUIRE_APPROVAL:
            if approval is None or approval.status == ToolApproval.PENDING:
                lifecycle.hold_for_approval(self.run_row, self.worker, tool_call_id=call.id,
                                            server=server_name, tool=tool_name,
                                            arguments=self._clean(call.arguments))
                raise _Stop(Outcome(Run.WAITING_APPROVAL))
            if approval.status == ToolApproval.REJECTED:
                raise _Stop(Outcome(Run.FAILED, error=f"The call to {label} was rejected by "
                                                      f"{approval.decided_by_label}."))
        try:
            live = self.pool.live_hash(server, tool_name, pins_digest(
                {name: t.approved_hash for name, t in pinned.items()}))
            if live != tool.approved_hash:
                return record({}, f"The server now describes {label} differently from the "
                                  "approved definition; it is not callable until the change "
                                  "is reviewed and approved (re-run discovery).")
            timeout = min(float(settings.MCP_CALL_TIMEOUT_SECONDS), max(self._remaining(), 1))
            result = self.pool.call(server, tool_name, call.arguments, timeout)
        except ToolCallFailed as exc:
            return record({}, self.redact(str(exc)))
        output: dict[str, Any] = {"text": result.text, "is_error": result.is_error,
                                  "content": result.content}
        if result.structured is not None:
            output["structured"] = result.structured
        return record(output)
