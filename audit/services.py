"""`record()`: the one way an audit event is written, inside the caller's transaction."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connection, models, transaction

from audit import chain
from audit.models import AuditEvent
from audit.registry import check_action
from station.core.request_context import current_request
from tenants.context import require_org_id

if TYPE_CHECKING:
    from tenants.authz import Principal


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, uuid.UUID | float | Decimal):
        # Floats and decimals as text: jsonb may re-encode them (1e16 → 10000000000000000)
        # and the hash must cover exactly what verification reads back.
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def change(before: Any, after: Any) -> dict[str, Any]:
    """The `changes` entry of one field that went from `before` to `after`."""
    return {"from": before, "to": after}


def record(
    action: str,
    *,
    actor: Principal,
    target: models.Model | None = None,
    target_label: str = "",
    changes: dict[str, Any] | None = None,
    environment_id: uuid.UUID | None = None,
) -> AuditEvent:
    """Append one event to the current org's chain. Must run inside the change's transaction."""
    check_action(action)
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.record() must run inside the transaction of the change.")
    org_id = require_org_id()
    with connection.cursor() as cursor:
        # Serialize appends per org for the rest of this transaction.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", [str(org_id)])
    head = AuditEvent.objects.order_by("-sequence").values("sequence", "hash").first()
    request = current_request.get()
    fields: dict[str, Any] = {
        "organization_id": org_id,
        "sequence": (head["sequence"] + 1) if head else 1,
        "occurred_at": AuditEvent._meta.get_field("occurred_at").get_default(),
        "actor_type": actor.kind,
        "actor_id": actor.actor_id or "",
        "actor_label": actor.label[:255],
        "action": action,
        "target_type": target._meta.label if target is not None else "",
        "target_id": str(target.pk) if target is not None else "",
        "target_label": (target_label or (str(target) if target is not None else ""))[:255],
        "environment_id": environment_id,
        "changes": _json_safe(changes or {}),
        "context": request.as_dict() if request else {},
        "prev_hash": head["hash"] if head else chain.GENESIS,
    }
    fields["hash"] = chain.compute_hash(fields)
    return AuditEvent.objects.create(**fields)
