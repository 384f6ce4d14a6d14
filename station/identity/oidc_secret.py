"""The OIDC client secret, sealed under the org's vault data key (as webhook secrets are).

Station must send the secret to the IdP's token endpoint, so it is encrypted, not hashed:
AES-256-GCM under the org's data key, bound to the org and the connection row, re-encrypted
by `vault.rotate_data_key` (see `reseal`). It is never returned by the API or shown.
"""

from __future__ import annotations

import uuid
from typing import Any

from station.vault import crypto
from station.vault import services as vault
from station.vault.models import DataKey


def _aad(connection: Any) -> bytes:
    return f"station-oidc-client-secret:v1:{connection.organization_id}:{connection.pk}".encode()


def seal_onto(connection: Any, plaintext: str) -> None:
    data_key, nonce, ciphertext = vault.seal(plaintext, _aad(connection))
    connection.secret_data_key = data_key
    connection.secret_nonce = nonce
    connection.secret_ciphertext = ciphertext


def reveal(connection: Any) -> str:
    if connection.secret_data_key_id is None:
        return ""
    return vault.unseal(connection.secret_data_key, bytes(connection.secret_nonce),
                        bytes(connection.secret_ciphertext), _aad(connection))


def reseal(old_raw: dict[uuid.UUID, bytes], new_key: DataKey, new_raw: bytes) -> int:
    from station.identity.models import OidcConnection

    count = 0
    for row in OidcConnection.objects.select_for_update().filter(secret_data_key__isnull=False):
        aad = _aad(row)
        value = crypto.decrypt(old_raw[row.secret_data_key_id], bytes(row.secret_nonce),
                               bytes(row.secret_ciphertext), aad)
        row.secret_nonce, row.secret_ciphertext = crypto.encrypt(new_raw, value, aad)
        row.secret_data_key = new_key
        row.save(update_fields=["secret_nonce", "secret_ciphertext", "secret_data_key"])
        count += 1
    return count
