"""Webhook signing secrets: generated, shown once, kept sealed under the org's data key.

Why encrypted and not hashed: a signing secret is an HMAC key both sides must hold — to
verify an inbound signature and to sign an outbound request, Station needs the secret itself,
so a one-way hash (as for API keys) cannot work. Sealing it with the vault's envelope
encryption (per-org data key wrapped by a master key, AES-256-GCM bound to org, webhook kind
and id) keeps it unreadable in a database dump, lets master keys rotate with `station keys
rotate`, and lets `vault.rotate_data_key` re-encrypt it (see `reseal`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import Any

from django.utils import timezone

from station.vault import crypto
from station.vault import services as vault
from station.vault.models import DataKey

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def _aad(webhook: Any) -> bytes:
    kind = type(webhook).__name__.lower()
    return f"station-webhook-secret:v1:{webhook.organization_id}:{kind}:{webhook.pk}".encode()


def seal_onto(webhook: Any, plaintext: str) -> None:
    """Set the sealed-secret fields of an (unsaved or to-be-saved) webhook row."""
    data_key, nonce, ciphertext = vault.seal(plaintext, _aad(webhook))
    webhook.secret_data_key = data_key
    webhook.secret_nonce = nonce
    webhook.secret_ciphertext = ciphertext
    webhook.secret_last_four = plaintext[-4:]
    webhook.secret_rotated_at = timezone.now()


def reveal(webhook: Any) -> str:
    return vault.unseal(webhook.secret_data_key, bytes(webhook.secret_nonce),
                        bytes(webhook.secret_ciphertext), _aad(webhook))


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """Hex HMAC-SHA256 of "<timestamp>.<raw body>" (the `v1=` signature)."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def reseal(old_raw: dict[uuid.UUID, bytes], new_key: DataKey, new_raw: bytes) -> int:
    """Re-encrypt every webhook secret of the current org under a new data key (called by
    `vault.rotate_data_key` inside its transaction)."""
    from station.triggers.models import InboundWebhook, OutboundWebhook

    count = 0
    for model in (InboundWebhook, OutboundWebhook):
        for hook in model.objects.select_for_update():
            aad = _aad(hook)
            value = crypto.decrypt(old_raw[hook.secret_data_key_id], bytes(hook.secret_nonce),
                                   bytes(hook.secret_ciphertext), aad)
            hook.secret_nonce, hook.secret_ciphertext = crypto.encrypt(new_raw, value, aad)
            hook.secret_data_key = new_key
            hook.save(update_fields=["secret_nonce", "secret_ciphertext", "secret_data_key"])
            count += 1
    return count


def register_with_vault() -> None:
    vault.register_resealer(reseal)
