"""Master keys: the root of envelope encryption.

A keyring is a set of 256-bit master keys with key ids, one of them current. They come from
configuration — `STATION_MASTER_KEYS` ("kid:base64,kid:base64") and/or the JSON file named
by `STATION_MASTER_KEYS_FILE` ({"current": kid, "keys": {kid: base64}}); with the embedded
default, `station up` generates that file in the data directory on first start. The current
key is `STATION_MASTER_KEY_ID`, else the file's "current", else the last one listed.

`KeyProvider` is the interface a KMS or Vault transit backend can implement later: it only
wraps and unwraps data keys, so master keys never leave it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_KID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
NONCE_BYTES = 12


class KeyProvider(Protocol):
    @property
    def current_kid(self) -> str: ...

    def wrap(self, data_key: bytes, *, context: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, kid: str, wrapped: bytes, *, context: bytes) -> bytes: ...

    def kids(self) -> list[str]: ...


class UnknownMasterKey(LookupError):
    pass


@dataclass(frozen=True)
class LocalKeyring:
    """Master keys held in process memory (from configuration). AES-256-GCM key wrapping."""

    keys: dict[str, bytes]
    current_kid: str

    def wrap(self, data_key: bytes, *, context: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current_kid]).encrypt(nonce, data_key, context)
        return self.current_kid, nonce + sealed

    def unwrap(self, kid: str, wrapped: bytes, *, context: bytes) -> bytes:
        try:
            key = self.keys[kid]
        except KeyError as exc:
            raise UnknownMasterKey(f"master key {kid!r} is not configured") from exc
        return AESGCM(key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)

    def kids(self) -> list[str]:
        return list(self.keys)


def _decode_key(kid: str, encoded: object, source: str) -> bytes:
    if not isinstance(kid, str) or not _KID.match(kid):
        raise ImproperlyConfigured(f"{source}: master key id {kid!r} must match {_KID.pattern}.")
    if not isinstance(encoded, str):
        raise ImproperlyConfigured(f"{source}: master key {kid!r} must be a base64 string.")
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{source}: master key {kid!r} is not valid base64.") from exc
    if len(raw) != 32:
        raise ImproperlyConfigured(
            f"{source}: master key {kid!r} must be 32 bytes (256 bits), got {len(raw)}.")
    return raw


def parse_env_keys(value: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        kid, sep, encoded = item.partition(":")
        if not sep:
            raise ImproperlyConfigured(
                "STATION_MASTER_KEYS entries look like kid:base64key, separated by commas.")
        raw = _decode_key(kid, encoded, "STATION_MASTER_KEYS")
        if keys.get(kid, raw) != raw:
            raise ImproperlyConfigured(
                f"STATION_MASTER_KEYS: master key {kid!r} is listed twice with different keys.")
        keys[kid] = raw
    return keys


def read_keys_file(path: Path) -> tuple[dict[str, bytes], str | None]:
    source = f"STATION_MASTER_KEYS_FILE {path}"
    try:
        data = json.loads(path.read_text())
        raw_keys = data["keys"]
        current = data.get("current")
        if not isinstance(raw_keys, dict) or not isinstance(current, str | None):
            raise TypeError("'keys' must map key ids to keys, 'current' must be a key id")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ImproperlyConfigured(
            f"{source}: unreadable or not {{'current', 'keys'}} JSON ({exc}).") from exc
    keys = {kid: _decode_key(kid, enc, source) for kid, enc in raw_keys.items()}
    return keys, current


def generate_keys_file(path: Path) -> None:
    """Create a keys file with one fresh key (0600). Never overwrites an existing file."""
    kid = "k1"
    payload = {"current": kid,
               "keys": {kid: base64.b64encode(secrets.token_bytes(32)).decode()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)


def add_key_to_file(path: Path, kid: str) -> None:
    """Add a new key to a keys file and make it current (for `station keys add`)."""
    keys, _ = read_keys_file(path)
    if kid in keys:
        raise ImproperlyConfigured(f"master key {kid!r} already exists in {path}.")
    _decode_key(kid, base64.b64encode(b"\0" * 32).decode(), str(path))  # validates the id
    data = json.loads(path.read_text())
    data["keys"][kid] = base64.b64encode(secrets.token_bytes(32)).decode()
    data["current"] = kid
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def load_keyring() -> LocalKeyring:
    keys: dict[str, bytes] = {}
    current: str | None = None
    path = settings.VAULT_MASTER_KEYS_FILE
    if path is not None:
        path = Path(path)
        if not path.exists() and settings.VAULT_GENERATE_KEYS_FILE:
            generate_keys_file(path)
        keys, current = read_keys_file(path)
    if settings.VAULT_MASTER_KEYS:
        for kid, raw in parse_env_keys(settings.VAULT_MASTER_KEYS).items():
            if keys.get(kid, raw) != raw:
                raise ImproperlyConfigured(
                    f"Master key {kid!r} has different values in STATION_MASTER_KEYS and "
                    "STATION_MASTER_KEYS_FILE.")
            keys[kid] = raw
    if not keys:
        raise ImproperlyConfigured(
            "No master key configured: set STATION_MASTER_KEYS or STATION_MASTER_KEYS_FILE.")
    if settings.VAULT_MASTER_KEY_ID:
        current, source = settings.VAULT_MASTER_KEY_ID, "STATION_MASTER_KEY_ID"
    elif current:
        source = "the keys file's \"current\""
    else:
        current, source = list(keys)[-1], "the last key listed"
    if current not in keys:
        raise ImproperlyConfigured(
            f"The current master key {current!r} (from {source}) is not configured.")
    return LocalKeyring(keys=keys, current_kid=current)


@lru_cache(maxsize=1)
def keyring() -> KeyProvider:
    return load_keyring()


def reset() -> None:
    """Forget the cached keyring (tests, `station keys add`)."""
    keyring.cache_clear()
