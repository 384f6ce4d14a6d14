"""The IdPs' signing keys (JWKS), kept in the shared cache so a sign-in does not fetch them.

A JWKS is cached for JWKS_CACHE_SECONDS, keyed by its URI (public data: two orgs of one IdP
share it). An ID token whose `kid` is not in the cached set may mean the IdP rotated its keys,
so the JWKS is fetched again once; at most once per JWKS_REFETCH_FLOOR_SECONDS per URI and
connection across every process (an atomic cache add), so tokens with made-up kids cannot make
Station hammer the IdP. The floor is per connection, not per URI: otherwise an org whose
connection names a shared IdP's `jwks_uri` (and a token endpoint of its own, answering with
made-up kids) could keep another org of that IdP from picking up a key rotation. An IdP that
replaces a key but keeps its kid is picked up when the cached copy expires.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.cache import cache

from station.identity import oidc

JWKS_CACHE_SECONDS = 600
JWKS_REFETCH_FLOOR_SECONDS = 60


def _keys(jwks_uri: str, connection: str = "") -> tuple[str, str]:
    """The cache keys of the JWKS at `jwks_uri` (shared) and of `connection`'s refetch floor."""
    digest = hashlib.sha256(jwks_uri.encode()).hexdigest()
    return f"oidc:jwks:{digest}", f"oidc:jwks-refetched:{digest}:{connection}"


def _fetch(jwks_uri: str) -> Any:
    jwks = oidc.get_json(jwks_uri, "JWKS")
    if isinstance(jwks, dict) and isinstance(jwks.get("keys"), list):
        cache.set(_keys(jwks_uri)[0], jwks, timeout=JWKS_CACHE_SECONDS)  # never a bad document
    return jwks


def verify_id_token(id_token: str, *, issuer: str, client_id: str, nonce: str,
                    jwks_uri: str, connection: str) -> dict[str, Any]:
    """oidc.verify_id_token against the IdP's JWKS, from the cache when possible;
    `connection` (the OIDC connection's id) owns the refetch floor."""
    value_key, refetched_key = _keys(jwks_uri, connection)
    jwks = cache.get(value_key)
    if jwks is None:  # fetched just now: an unknown kid is unknown, no second try
        return oidc.verify_id_token(id_token, issuer=issuer, client_id=client_id,
                                    nonce=nonce, jwks=_fetch(jwks_uri))
    try:
        return oidc.verify_id_token(id_token, issuer=issuer, client_id=client_id,
                                    nonce=nonce, jwks=jwks)
    except oidc.OidcError as exc:
        # add() is atomic (SET NX on Redis): one refetch per floor window in all processes.
        if exc.reason != "unknown_key" or not cache.add(
                refetched_key, 1, timeout=JWKS_REFETCH_FLOOR_SECONDS):
            raise
    return oidc.verify_id_token(id_token, issuer=issuer, client_id=client_id, nonce=nonce,
                                jwks=_fetch(jwks_uri))
