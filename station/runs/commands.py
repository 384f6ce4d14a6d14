"""`station run ORG/ENV/AGENT --input JSON`: start a run and follow it to its end.

Called from station.cli after Django is set up. The actor is the platform operator
(`Principal.system`), like the other `station` commands; the start is audited as such. Steps
are printed as the worker records them; the exit status tells how the run ended (0 succeeded,
1 failed/cancelled/timed out, 2 bad input, 3 still running when --timeout expired).
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from typing import Any

from django.db import transaction

from station.agents.models import Agent
from station.core.errors import StationError
from station.runs import services
from station.runs.models import Run, RunStep
from tenants import platform
from tenants.authz import Principal
from tenants.context import org_context

EXIT = {Run.SUCCEEDED: 0, Run.FAILED: 1, Run.CANCELLED: 1, Run.TIMED_OUT: 1}


def _err(message: str) -> None:
    print(f"station: {message}", file=sys.stderr)


def _short(value: Any, limit: int = 100) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_step(step: RunStep) -> str:
    tokens = (f"  {step.input_tokens}+{step.output_tokens} tokens"
              if step.input_tokens or step.output_tokens else "")
    head = f"  #{step.sequence:<3} {step.kind:<5} {step.latency_ms:>6} ms{tokens}"
    if step.kind == RunStep.TOOL:
        arguments = _short(step.input.get("arguments", {}), 60)
        head += f"  {step.tool_server}/{step.tool_name}({arguments})"
        return head + (f"  ✗ {_short(step.error)}" if step.error
                       else f"  → {_short(step.output.get('text', ''))}")
    if step.error:
        return head + f"  ✗ {_short(step.error)}"
    message = step.output.get("message", {})
    calls = [c.get("name", "") for c in message.get("tool_calls", [])]
    if calls:
        return head + "  calls " + ", ".join(calls)
    return head + f"  says {_short(message.get('content', ''))}"


def run(target: str, raw_input: str, *, follow: bool = True, timeout: float = 600.0,
        poll: float = 0.5) -> int:
    org_slug, _, rest = target.partition("/")
    env_slug, _, agent_name = rest.partition("/")
    if not (org_slug and env_slug and agent_name):
        _err(f"{target!r}: give ORG/ENV/AGENT, e.g. acme/prod/triage-bot")
        return 2
    try:
        data = json.loads(raw_input) if raw_input else {}
    except json.JSONDecodeError as exc:
        _err(f"--input is not valid JSON: {exc}")
        return 2
    org = platform.org_by_slug(org_slug)
    if org is None:
        _err(f"no organization {org_slug!r}")
        return 2
    actor = Principal.system(f"station run ({getpass.getuser()})")
    with org_context(org.id):
        try:
            with transaction.atomic():
                agent = (Agent.objects.select_related("environment")
                         .filter(environment__slug=env_slug, name=agent_name).first())
                if agent is None:
                    _err(f"no agent {agent_name!r} in {org_slug}/{env_slug}")
                    return 2
                started, _ = services.start_run(actor=actor, agent=agent, input=data,
                                                trigger="cli")
        except StationError as exc:
            _err(str(exc))
            for field, problems in (getattr(exc, "errors", None) or {}).items():
                for problem in problems:
                    _err(f"  {field}: {problem}")
            return 2
        print(f"Run {started.pk} of {agent_name} v{started.version.number} queued.")
        if not follow:
            return 0
        return _follow(started.pk, timeout=timeout, poll=poll)


def _follow(run_id: Any, *, timeout: float, poll: float) -> int:
    shown, status = 0, ""
    deadline = time.monotonic() + timeout
    try:
        while True:
            with transaction.atomic():
                current = Run.objects.get(pk=run_id)
                steps = list(RunStep.objects.filter(run_id=run_id, sequence__gt=shown)
                             .order_by("sequence"))
            if current.status != status:
                status = current.status
                print(f"[{status}]")
            for step in steps:
                print(describe_step(step))
                shown = step.sequence
            if current.is_final:
                print(f"Run {current.get_status_display().lower()}: "
                      f"{current.step_count} steps, {current.total_tokens} tokens.")
                if current.output:
                    print(current.output)
                if current.error:
                    _err(current.error)
                return EXIT[current.status]
            if time.monotonic() > deadline:
                _err(f"still {status} after {timeout:g}s; the run goes on (see run {run_id})")
                return 3
            time.sleep(poll)
    except KeyboardInterrupt:
        _err(f"stopped following; the run goes on (run {run_id})")
        return 130
