"""Outbound webhooks: a delivery row per (webhook, run, event), sent from a Celery task with
bounded, exponentially spaced retries; every attempt is logged.

Signing is the inbound scheme: `Station-Timestamp` and `Station-Signature: v1=<hex
HMAC-SHA256(secret, "<timestamp>.<raw body>")>`. The body is fixed when the delivery is
created, so every attempt sends the same bytes (re-signed with a fresh timestamp).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import httpx2
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from station.core import egress
from station.runs.models import Run
from station.triggers import secrets
from station.triggers.models import DeliveryAttempt, OutboundWebhook, WebhookDelivery
from tenants.context import org_scope

log = logging.getLogger(__name__)

EXCERPT = 1024
USER_AGENT = "Station-Webhooks/1"


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


def payload(run: Run, event: str, delivery_id: uuid.UUID) -> dict[str, Any]:
    return {
        "event": event,
        "delivery_id": str(delivery_id),
        "created_at": timezone.now().isoformat(),
        "environment": run.environment.slug,
        "agent": {"id": str(run.agent_id), "name": run.agent.name,
                  "version": run.version.number},
        "run": {
            "id": str(run.pk), "status": run.status, "trigger": run.trigger,
            "trigger_ref": run.trigger_ref, "output": run.output, "error": run.error,
            "created_at": _iso(run.created_at), "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at), "steps": run.step_count,
            "tokens": {"input": run.input_tokens, "output": run.output_tokens,
                       "total": run.total_tokens},
        },
    }


def enqueue_for_run(*, org_id: str, run_id: str) -> list[uuid.UUID]:
    """Create the deliveries a finished run calls for and queue them (idempotent: a second
    signal for the same run finds its deliveries already there)."""
    from station.triggers import tasks

    created: list[uuid.UUID] = []
    with org_scope(org_id):
        run = (Run.objects.select_related("agent", "version", "environment")
               .filter(pk=run_id).first())
        if run is None or not run.is_final:
            return created
        event = f"run.{run.status}"
        hooks = OutboundWebhook.objects.filter(
            Q(agent__isnull=True) | Q(agent_id=run.agent_id),
            environment_id=run.environment_id, enabled=True)
        for hook in hooks:
            if event not in hook.events:
                continue
            delivery_id = uuid.uuid4()
            delivery, was_created = WebhookDelivery.objects.get_or_create(
                webhook=hook, run=run, event=event,
                defaults={"id": delivery_id, "organization_id": run.organization_id,
                          "payload": payload(run, event, delivery_id),
                          "next_attempt_at": timezone.now()})
            if was_created:
                created.append(delivery.pk)
        for pk in created:
            transaction.on_commit(partial(tasks.deliver_webhook.delay, org_id=str(org_id),
                                          delivery_id=str(pk)))
    return created


# --- sending ---------------------------------------------------------------------------------


class DestinationRefused(Exception):
    pass


def _parsed(url: str) -> httpx2.URL:
    """`url` as httpx reads it (its host in ASCII/IDNA form as `raw_host`), or
    DestinationRefused for a URL no request can be made to."""
    try:
        parsed = httpx2.URL(url)
    except (httpx2.InvalidURL, ValueError) as exc:
        raise DestinationRefused(f"invalid URL: {exc}") from exc
    if not parsed.raw_host or (parsed.port is not None and not 0 < parsed.port < 65536):
        raise DestinationRefused("invalid URL: no host, or a port outside 1-65535")
    return parsed


def check_destination(url: str) -> None:
    """DestinationRefused unless the webhook's host resolves to public addresses only
    (station.core.egress's rule: a webhook URL must not reach the cloud metadata service or
    internal systems) or STATION_WEBHOOK_ALLOW_PRIVATE_NETWORKS is on; an early, permanent
    refusal (the transport judges the address it connects to again)."""
    parsed = _parsed(url)
    if settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS:
        return
    try:
        egress.judged_addresses(parsed.raw_host.decode("ascii"), parsed.port)
    except egress.NotPublic as exc:
        raise DestinationRefused(f"{exc.detail}; refused") from exc


@dataclass
class Outcome:
    code: int | None = None
    body: str = ""
    error: str = ""
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def send(url: str, secret: str, body: bytes, headers: dict[str, str]) -> Outcome:
    try:
        check_destination(url)
    except DestinationRefused as exc:
        return Outcome(error=str(exc), permanent=True)
    timestamp = int(time.time())
    signed = {**headers, "Content-Type": "application/json", "User-Agent": USER_AGENT,
              "Station-Timestamp": str(timestamp),
              "Station-Signature": "v1=" + secrets.sign(secret, timestamp, body)}
    try:
        # Connect only to an address judged public at connect time (no DNS rebinding), the
        # receiver's name kept for TLS and the Host header.
        transport = (None if settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS
                     else egress.pinned_transport(url, egress.is_public))
        with httpx2.Client(timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False,
                           transport=transport) as client:
            response = client.post(url, content=body, headers=signed)
    except Exception as exc:  # an attempt always ends recorded (a retry), never stuck pending
        if not isinstance(exc, httpx2.HTTPError):
            log.warning("webhook delivery failed unexpectedly", exc_info=True)
        return Outcome(error=f"{type(exc).__name__}: {exc}"[:2000])
    return Outcome(code=response.status_code, body=response.text[:EXCERPT],
                   error="" if 200 <= response.status_code < 300
                   else f"HTTP {response.status_code}")


def backoff(attempts: int) -> timedelta:
    """Delay before attempt `attempts + 1`: base · 2^(attempts-1), at most an hour."""
    seconds = settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, 3600))


def attempt(delivery_id: str) -> timedelta | None:
    """One attempt of a pending, due delivery (inside the org scope set by the task).
    Returns the delay before the next attempt, or None when nothing more is to be done.
    A duplicate or early task message finds the delivery not due and does nothing."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update()
                    .select_related("webhook", "webhook__secret_data_key")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status != WebhookDelivery.PENDING:
            return None
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
            return None
        hook = delivery.webhook
        number = delivery.attempts + 1
        delivery.attempts = number
        delivery.last_attempt_at = now
        # A lease: a redelivered message may take over only once this attempt surely ended.
        delivery.next_attempt_at = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS
                                                   + 60)
        delivery.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
        if not hook.enabled:
            outcome = Outcome(error="webhook disabled", permanent=True)
            secret = ""
        else:
            outcome = Outcome()
            secret = secrets.reveal(hook)
        url = hook.url
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Station-Event": delivery.event, "Station-Delivery": str(delivery.pk)}

    started = time.monotonic()
    if secret:
        outcome = send(url, secret, body, headers)
    duration = int((time.monotonic() - started) * 1000)

    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        DeliveryAttempt.objects.create(delivery=delivery, number=number,
                                       response_code=outcome.code,
                                       response_body=outcome.body, error=outcome.error,
                                       duration_ms=duration)
        delivery.response_code = outcome.code
        delivery.response_body = outcome.body
        delivery.error = outcome.error
        retry_in: timedelta | None = None
        if outcome.ok:
            delivery.status = WebhookDelivery.DELIVERED
            delivery.delivered_at = timezone.now()
            delivery.next_attempt_at = None
        elif outcome.permanent or number >= settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.status = WebhookDelivery.FAILED
            delivery.next_attempt_at = None
        else:
            retry_in = backoff(number)
            delivery.next_attempt_at = timezone.now() + retry_in
        delivery.save()
    return retry_in

