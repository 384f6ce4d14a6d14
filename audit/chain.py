"""Hashing and verification of an org's audit chain."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

GENESIS = "0" * 64

# The fields a hash covers, in order. Changing this list breaks every existing chain.
HASHED_FIELDS = (
    "organization_id", "sequence", "occurred_at", "actor_type", "actor_id", "actor_label",
    "action", "target_type", "target_id", "target_label", "environment_id", "changes",
    "context", "prev_hash",
)


def _normalize(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def canonical(fields: dict[str, Any]) -> bytes:
    payload = {name: _normalize(fields[name]) for name in HASHED_FIELDS}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(fields: dict[str, Any]) -> str:
    key = hashlib.sha256(b"station-audit-chain:" + settings.AUDIT_CHAIN_KEY.encode()).digest()
    return hmac.new(key, canonical(fields), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    first_bad_sequence: int | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"ok: {self.checked} events verified"
        return (
            f"FAILED at event id={self.first_bad_id} sequence={self.first_bad_sequence}: "
            f"{self.reason} ({self.checked} events verified before it)"
        )


def verify_events(events: Iterable[dict[str, Any]]) -> Verification:
    """Walk events in sequence order, following hash links (not gap-free numbering)."""
    expected_prev = GENESIS
    last_sequence: int | None = None
    checked = 0
    for event in events:
        bad = None
        if last_sequence is not None and event["sequence"] <= last_sequence:
            bad = "sequence does not increase (reordered rows)"
        elif event["prev_hash"] != expected_prev:
            bad = ("link to the previous event is broken "
                   "(an event was deleted, reordered or inserted)")
        elif not hmac.compare_digest(compute_hash(event), event["hash"]):
            bad = "hash does not match the contents (the event was edited or forged)"
        if bad:
            return Verification(False, checked, event["id"], event["sequence"], bad)
        expected_prev = event["hash"]
        last_sequence = event["sequence"]
        checked += 1
    return Verification(True, checked)
