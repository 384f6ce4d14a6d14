"""API key format and hashing.

A key reads `stk_<key id>_<secret>`. The key id (public, 12 characters) finds the row; the
secret is compared as an HMAC-SHA256 keyed with API_KEY_PEPPER, in constant time. Only the
hash and the last four characters are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from django.conf import settings

PREFIX = "stk_"
_KEY_RE = re.compile(r"^stk_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class GeneratedKey:
    key_id: str
    secret: str

    @property
    def plaintext(self) -> str:
        return f"{PREFIX}{self.key_id}_{self.secret}"

    @property
    def last_four(self) -> str:
        return self.secret[-4:]


def generate() -> GeneratedKey:
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return GeneratedKey(key_id=key_id, secret=secrets.token_urlsafe(32))


def parse(plaintext: str) -> tuple[str, str] | None:
    match = _KEY_RE.match(plaintext.strip())
    return (match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> str:
    pepper = hashlib.sha256(b"station-api-key:" + settings.API_KEY_PEPPER.encode()).digest()
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
