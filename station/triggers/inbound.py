"""Verifying and accepting a signed inbound webhook call.

Request: `POST /hooks/<webhook id>` with `Station-Timestamp: <unix seconds>` and
`Station-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` (several
comma-separated `v1=` values are accepted, any one matching). Checks, in order: the webhook
exists (404), the headers are there (401) and well formed (400), a signature matches
(constant-time, 401), the timestamp is within the window (401), the webhook is enabled (403),
the signature was not already used (409) — and only then is a run started.
"""

from __future__ import annotations

import hmac
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from station.core.errors import InvalidInput, NotFound, StationError
from station.triggers import secrets
from station.triggers.models import InboundSignature, InboundWebhook
from tenants import platform
from tenants.authz import Principal

TOLERANCE_SECONDS = 300
_SIGNATURE = re.compile(r"^v1=([0-9a-f]{64})$")


class SignatureMissing(StationError):
    status, code, title = 401, "signature_missing", "Signature required"


class SignatureMalformed(StationError):
    status, code, title = 400, "signature_malformed", "Malformed signature headers"


class SignatureInvalid(StationError):
    status, code, title = 401, "signature_invalid", "Signature does not match"


class TimestampOutsideWindow(StationError):
    status, code, title = 401, "timestamp_outside_window", "Timestamp outside the window"


class WebhookDisabled(StationError):
    status, code, title = 403, "webhook_disabled", "Webhook disabled"


class SignatureReplayed(StationError):
    status, code, title = 409, "signature_replayed", "Request already received"


@dataclass(frozen=True)
class Accepted:
    run_id: uuid.UUID
    created: bool


def _not_found() -> NotFound:
    return NotFound("No such webhook.")


def _signatures(header: str) -> list[str]:
    found = []
    for part in header.split(","):
        match = _SIGNATURE.match(part.strip())
        if match is None:
            raise SignatureMalformed("Station-Signature must be v1=<64 lowercase hex digits> "
                                     "(several separated by commas).")
        found.append(match.group(1))
    return found


def _timestamp(header: str) -> int:
    if not re.fullmatch(r"\d{1,12}", header.strip()):
        raise SignatureMalformed("Station-Timestamp must be the Unix time in whole seconds.")
    return int(header.strip())


def _input(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput.field("body", f"Not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise InvalidInput.field("body", "The body must be a JSON object (the run input).")
    return data


def receive(*, webhook_id: str, headers: Mapping[str, str], body: bytes) -> Accepted:
    """Verify the call and start the run. Must run inside the request's transaction; any
    error leaves nothing written (the caller rolls back)."""
    from station.runs.services import start_run

    try:
        parsed_id = uuid.UUID(webhook_id)
    except ValueError as exc:
        raise _not_found() from exc
    if platform.enter_org_of_inbound_webhook(parsed_id) is None:
        raise _not_found()
    hook = (InboundWebhook.objects.select_related("agent", "agent__environment",
                                                  "secret_data_key")
            .filter(pk=parsed_id).first())
    if hook is None:  # pragma: no cover - found a moment ago in the same transaction
        raise _not_found()

    timestamp_header = headers.get("Station-Timestamp", "")
    signature_header = headers.get("Station-Signature", "")
    if not timestamp_header or not signature_header:
        raise SignatureMissing("Sign the request: Station-Timestamp and Station-Signature "
                               "headers are required (see docs/triggers.md).")
    timestamp = _timestamp(timestamp_header)
    offered = _signatures(signature_header)
    expected = secrets.sign(secrets.reveal(hook), timestamp, body)
    matched = [s for s in offered if hmac.compare_digest(expected, s)]
    if not matched:
        raise SignatureInvalid("The signature does not match this webhook's secret and the "
                               "request body.")
    now = timezone.now()
    if abs(now.timestamp() - timestamp) > TOLERANCE_SECONDS:
        raise TimestampOutsideWindow(
            f"Station-Timestamp is more than {TOLERANCE_SECONDS // 60} minutes from the "
            "server's clock; sign each request when you send it.")
    if not hook.enabled:
        raise WebhookDisabled("This webhook is disabled.")

    InboundSignature.objects.filter(
        webhook=hook, seen_at__lt=now - timedelta(seconds=2 * TOLERANCE_SECONDS)).delete()
    try:
        with transaction.atomic():
            InboundSignature.objects.create(webhook=hook, signature=expected, seen_at=now)
    except IntegrityError as exc:
        raise SignatureReplayed("This exact request (same signature) was already "
                                "received; sign a new request to send it again.") from exc

    data = _input(body)
    key = headers.get("Idempotency-Key", "").strip()
    run, created = start_run(
        actor=Principal.system(f"inbound webhook {hook.name or hook.pk}"), agent=hook.agent,
        input=data, trigger="webhook", trigger_ref=str(hook.pk),
        idempotency_key=f"webhook:{hook.pk}:{key}"[:255] if key else "")
    hook.last_used_at = now
    hook.save(update_fields=["last_used_at"])
    return Accepted(run.pk, created)
