"""`Idempotency-Key` on creating POSTs: same key and body → the same response, once.

Records live in the org's scope, keyed by principal, and are written in the request's own
transaction, so a failed request leaves no record and can be retried with the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from rest_framework.request import Request
from rest_framework.response import Response

from station.core.errors import Conflict, InvalidInput
from tenants.authz import Principal
from tenants.models import IdempotencyRecord

HEADER = "Idempotency-Key"


def _request_hash(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotent(
    request: Request, create: Callable[[], Response], *, redact: tuple[str, ...] = ()
) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        return create()
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise InvalidInput.field(HEADER, "Use 1–255 printable characters.")
    principal = request.auth
    assert isinstance(principal, Principal)
    who = f"{principal.kind}:{principal.actor_id}"
    digest = _request_hash(request)
    previous = IdempotencyRecord.objects.filter(principal=who, key=key).first()
    if previous is not None:
        if previous.request_hash != digest:
            raise InvalidInput.field(
                HEADER, "This key was already used for a different request; use a new key."
            )
        response = Response(previous.response_body, status=previous.status_code)
        response["Idempotent-Replayed"] = "true"
        return response
    response = create()
    if response.status_code < 500:
        body: Any = response.data
        if redact and isinstance(body, dict):
            body = {k: (None if k in redact else v) for k, v in body.items()}
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(
                    principal=who, key=key, method=request.method, path=request.path,
                    request_hash=digest, status_code=response.status_code,
                    response_body=json.loads(json.dumps(body, default=str)),
                )
        except IntegrityError as exc:
            raise Conflict("Another request with this Idempotency-Key is in progress.") from exc
    return response
