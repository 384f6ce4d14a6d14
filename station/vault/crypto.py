"""AES-256-GCM for secret values, bound to where they belong.

Every value is encrypted with its org's data key and a fresh random 96-bit nonce; the
associated data binds organization, environment, secret name and version, so a ciphertext
copied to another place (or version) fails to decrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


def value_aad(org_id: uuid.UUID, environment_id: uuid.UUID, name: str, version: int) -> bytes:
    return f"station-secret:v1:{org_id}:{environment_id}:{name}:{version}".encode()


def data_key_aad(org_id: uuid.UUID, version: int) -> bytes:
    return f"station-data-key:v1:{org_id}:{version}".encode()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encrypt(key: bytes, plaintext: str, aad: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, plaintext.encode(), aad)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> str:
    return AESGCM(key).decrypt(nonce, ciphertext, aad).decode()


def fingerprint(data_key: bytes, plaintext: str) -> str:
    """A keyed hash that tells versions apart without revealing anything about the value."""
    mac = hmac.new(data_key, b"station-fingerprint:" + plaintext.encode(), hashlib.sha256)
    return mac.hexdigest()[:16]
