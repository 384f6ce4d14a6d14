"""Writes for schedules and webhooks (STYLE.md §1: authorize, write, audit, same transaction).

A trigger starts runs on its own later, so creating one needs both `agents.write` (it changes
the agent's configuration) and `agents.run` (it will run the agent): a key scoped to writing
agents alone cannot grant itself runs through a schedule.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from station.agents.models import Agent
from station.core.errors import InvalidInput
from station.triggers import cron, secrets
from station.triggers.models import EVENT_NAMES, InboundWebhook, OutboundWebhook, Schedule
from tenants.authz import Principal, authorize

FIRE_TASK = "station.triggers.fire_schedule"
MAX_INPUT_BYTES = 64 * 1024


def _authorize_trigger(actor: Principal, agent: Agent, *, runs: bool = True) -> None:
    authorize(actor, "agents.write", agent.organization_id, agent.environment)
    if runs:
        authorize(actor, "agents.run", agent.organization_id, agent.environment)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or len(name) > 100:
        raise InvalidInput.field("name", "At most 100 characters.")
    return name.strip()


# --- schedules ---------------------------------------------------------------------------------


def _check_input(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput.field("input", "A JSON object (the run input).")
    if len(json.dumps(value)) > MAX_INPUT_BYTES:
        raise InvalidInput.field("input", f"At most {MAX_INPUT_BYTES // 1024} KiB.")
    return value


def _validate_schedule(config: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    for check in (lambda: cron.parse(config["cron"]), lambda: cron.zone(config["timezone"]),
                  lambda: _check_input(config["input"])):
        try:
            check()
        except InvalidInput as exc:
            for field, messages in exc.errors.items():
                errors.setdefault(field, []).extend(messages)
    if errors:
        first = next(iter(errors))
        raise InvalidInput(f"{first}: {errors[first][0]}", errors=errors)


def _next_run(schedule: Schedule) -> Any:
    if not schedule.enabled:
        return None
    return cron.next_fire(schedule.cron, schedule.timezone, timezone.now())


def sync_periodic_task(schedule: Schedule) -> None:
    """Create or update the schedule's beat entry (django-celery-beat tables: platform rows
    holding only a crontab and `{org_id, schedule_id}`). Runs in the caller's transaction, so
    the beat entry can never disagree with the schedule that committed."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    fields = cron.split(schedule.cron)
    crontab = CrontabSchedule.objects.filter(timezone=schedule.timezone, **fields).first()
    if crontab is None:
        crontab = CrontabSchedule.objects.create(timezone=schedule.timezone, **fields)
    kwargs = json.dumps({"org_id": str(schedule.organization_id),
                         "schedule_id": str(schedule.pk)})
    task = PeriodicTask.objects.filter(name=schedule.periodic_task_name).first()
    if task is None:
        task = PeriodicTask(name=schedule.periodic_task_name)
    task.task = FIRE_TASK
    task.crontab = crontab
    task.interval = task.solar = task.clocked = None
    task.kwargs = kwargs
    task.enabled = schedule.enabled
    task.description = "Station schedule (tenant data stays in the org's tables)"
    task.save()


def drop_periodic_task(schedule_id: Any) -> None:
    from django_celery_beat.models import PeriodicTask

    for task in PeriodicTask.objects.filter(name=f"station.schedule:{schedule_id}"):
        task.delete()  # one by one: the delete signal tells beat its schedule changed


@transaction.atomic
def create_schedule(*, actor: Principal, agent: Agent, cron_expression: str,
                    timezone_name: str = "UTC", input: Any = None, name: str = "",
                    enabled: bool = True) -> Schedule:
    _authorize_trigger(actor, agent)
    config = {"cron": " ".join(str(cron_expression or "").split()),
              "timezone": timezone_name, "input": {} if input is None else input}
    _validate_schedule(config)
    schedule = Schedule(organization_id=agent.organization_id, environment=agent.environment,
                        agent=agent, name=_check_name(name), enabled=bool(enabled), **config)
    schedule.next_run_at = _next_run(schedule)
    schedule.save(force_insert=True)
    sync_periodic_task(schedule)
    audit.record("schedule.created", actor=actor, target=schedule,
                 environment_id=agent.environment_id,
                 changes={"agent": agent.name, "name": schedule.name, **config,
                          "enabled": schedule.enabled})
    return schedule


_SCHEDULE_FIELDS = ("name", "cron", "timezone", "input", "enabled")


@transaction.atomic
def update_schedule(*, actor: Principal, schedule: Schedule, **changes: Any) -> Schedule:
    _authorize_trigger(actor, schedule.agent)
    unknown = set(changes) - set(_SCHEDULE_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown schedule fields: {', '.join(sorted(unknown))}.",
                           errors={f: ["Unknown field."] for f in sorted(unknown)})
    if "cron" in changes:
        changes["cron"] = " ".join(str(changes["cron"] or "").split())
    if "name" in changes:
        changes["name"] = _check_name(changes["name"])
    current = {field: getattr(schedule, field) for field in _SCHEDULE_FIELDS}
    merged = {**current, **changes}
    _validate_schedule(merged)
    diff = {k: audit.change(current[k], v) for k, v in changes.items() if current[k] != v}
    if not diff:
        return schedule
    for field, value in changes.items():
        setattr(schedule, field, value)
    schedule.enabled = bool(schedule.enabled)
    schedule.next_run_at = _next_run(schedule)
    schedule.updated_at = timezone.now()
    schedule.save()
    sync_periodic_task(schedule)
    audit.record("schedule.updated", actor=actor, target=schedule,
                 environment_id=schedule.environment_id, changes=diff)
    return schedule


@transaction.atomic
def delete_schedule(*, actor: Principal, schedule: Schedule) -> None:
    _authorize_trigger(actor, schedule.agent, runs=False)
    audit.record("schedule.deleted", actor=actor, target=schedule,
                 environment_id=schedule.environment_id,
                 changes={"agent": schedule.agent.name, "cron": schedule.cron,
                          "timezone": schedule.timezone})
    schedule.delete()  # the post_delete receiver drops the beat entry in this transaction


# --- inbound webhooks ---------------------------------------------------------------------------


@transaction.atomic
def create_inbound_webhook(*, actor: Principal, agent: Agent, name: str = "",
                           enabled: bool = True) -> tuple[InboundWebhook, str]:
    """Returns the webhook and its signing secret, the only time the secret is shown."""
    _authorize_trigger(actor, agent)
    hook = InboundWebhook(organization_id=agent.organization_id, environment=agent.environment,
                          agent=agent, name=_check_name(name), enabled=bool(enabled))
    plaintext = secrets.new_secret()
    secrets.seal_onto(hook, plaintext)
    hook.save(force_insert=True)
    audit.record("webhook.created", actor=actor, target=hook,
                 environment_id=agent.environment_id,
                 changes={"direction": "inbound", "agent": agent.name, "name": hook.name,
                          "enabled": hook.enabled, "secret_last_four": hook.secret_last_four})
    return hook, plaintext


@transaction.atomic
def update_inbound_webhook(*, actor: Principal, webhook: InboundWebhook,
                           **changes: Any) -> InboundWebhook:
    _authorize_trigger(actor, webhook.agent)
    return _update(actor, webhook, changes, fields=("name", "enabled"))


# --- outbound webhooks --------------------------------------------------------------------------


def _check_url(url: Any) -> str:
    parsed = urlparse(str(url or ""))
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInput.field("url", "Give the receiver's http(s) URL, e.g. "
                                        "https://hooks.example.com/station.")
    if parsed.username or parsed.password:
        raise InvalidInput.field("url", "No credentials in the URL: verify the signature "
                                        "instead.")
    if len(str(url)) > 2000:
        raise InvalidInput.field("url", "At most 2000 characters.")
    try:
        port = parsed.port  # ValueError for a port that is not a number or out of range
    except ValueError:
        port = 0
    if port == 0:
        raise InvalidInput.field("url", "The port must be a number from 1 to 65535.")
    return str(url)


def _check_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str)
                                                             for e in events):
        raise InvalidInput.field("events", "A non-empty list of: " + ", ".join(EVENT_NAMES)
                                 + ".")
    unknown = [e for e in events if e not in EVENT_NAMES]
    if unknown:
        raise InvalidInput.field("events", f"Unknown events {', '.join(unknown)}; choose from "
                                           + ", ".join(EVENT_NAMES) + ".")
    return sorted(set(events), key=EVENT_NAMES.index)


def _outbound_scope_check(actor: Principal, environment: Any, agent: Agent | None) -> None:
    # It ships run outputs to a URL: the actor must be allowed to read runs there too.
    authorize(actor, "agents.write", environment.organization_id, environment)
    authorize(actor, "runs.read", environment.organization_id, environment)
    if agent is not None and agent.environment_id != environment.pk:
        raise InvalidInput.field("agent", "That agent lives in another environment.")


@transaction.atomic
def create_outbound_webhook(*, actor: Principal, environment: Any, url: str,
                            events: Any = None, agent: Agent | None = None, name: str = "",
                            enabled: bool = True) -> tuple[OutboundWebhook, str]:
    """`agent=None` subscribes to every agent of the environment. Returns the webhook and
    its signing secret, the only time the secret is shown."""
    _outbound_scope_check(actor, environment, agent)
    checked = {"url": _check_url(url),
               "events": _check_events(list(EVENT_NAMES) if events is None else events)}
    hook = OutboundWebhook(organization_id=environment.organization_id,
                           environment=environment, agent=agent, name=_check_name(name),
                           enabled=bool(enabled), **checked)
    plaintext = secrets.new_secret()
    secrets.seal_onto(hook, plaintext)
    hook.save(force_insert=True)
    audit.record("webhook.created", actor=actor, target=hook, environment_id=environment.pk,
                 changes={"direction": "outbound", "agent": agent.name if agent else None,
                          "name": hook.name, "enabled": hook.enabled,
                          "secret_last_four": hook.secret_last_four, **checked})
    return hook, plaintext


@transaction.atomic
def update_outbound_webhook(*, actor: Principal, webhook: OutboundWebhook,
                            **changes: Any) -> OutboundWebhook:
    _outbound_scope_check(actor, webhook.environment, webhook.agent)
    if "url" in changes:
        changes["url"] = _check_url(changes["url"])
    if "events" in changes:
        changes["events"] = _check_events(changes["events"])
    return _update(actor, webhook, changes, fields=("name", "enabled", "url", "events"))


# --- shared ----------------------------------------------------------------------------------


def _update(actor: Principal, webhook: Any, changes: dict[str, Any], *,
            fields: tuple[str, ...]) -> Any:
    unknown = set(changes) - set(fields)
    if unknown:
        raise InvalidInput(f"Unknown webhook fields: {', '.join(sorted(unknown))}.",
                           errors={f: ["Unknown field."] for f in sorted(unknown)})
    if "name" in changes:
        changes["name"] = _check_name(changes["name"])
    if "enabled" in changes:
        changes["enabled"] = bool(changes["enabled"])
    current = {field: getattr(webhook, field) for field in changes}
    diff = {k: audit.change(current[k], v) for k, v in changes.items() if current[k] != v}
    if not diff:
        return webhook
    for field, value in changes.items():
        setattr(webhook, field, value)
    webhook.updated_at = timezone.now()
    webhook.save()
    audit.record("webhook.updated", actor=actor, target=webhook,
                 environment_id=webhook.environment_id, changes=diff)
    return webhook


def _authorize_webhook(actor: Principal, webhook: Any) -> None:
    if isinstance(webhook, OutboundWebhook):
        _outbound_scope_check(actor, webhook.environment, webhook.agent)
    else:
        _authorize_trigger(actor, webhook.agent)


@transaction.atomic
def rotate_webhook_secret(*, actor: Principal, webhook: Any) -> str:
    """A new signing secret, returned once; the old one stops working at commit."""
    _authorize_webhook(actor, webhook)
    before = webhook.secret_last_four
    plaintext = secrets.new_secret()
    secrets.seal_onto(webhook, plaintext)
    webhook.updated_at = timezone.now()
    webhook.save()
    audit.record("webhook.secret_rotated", actor=actor, target=webhook,
                 environment_id=webhook.environment_id,
                 changes={"secret_last_four": audit.change(before, webhook.secret_last_four)})
    return plaintext


@transaction.atomic
def delete_webhook(*, actor: Principal, webhook: Any) -> None:
    if isinstance(webhook, OutboundWebhook):
        authorize(actor, "agents.write", webhook.organization_id, webhook.environment)
    else:
        _authorize_trigger(actor, webhook.agent, runs=False)
    direction = "outbound" if isinstance(webhook, OutboundWebhook) else "inbound"
    audit.record("webhook.deleted", actor=actor, target=webhook,
                 environment_id=webhook.environment_id,
                 changes={"direction": direction, "name": webhook.name})
    webhook.delete()
