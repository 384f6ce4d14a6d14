"""OpenID Connect configuration and ID-token verification (the checks allauth leaves out).

allauth 65's OpenID Connect provider skips the ID token's signature when the token came from
the token endpoint (so `alg=none` and any key pass), sends and checks no `nonce`, has no
algorithm allowlist, and fetches the discovery document at every login. Station keeps the
provider's per-org app (fed by `StationSocialAccountAdapter`), but runs the code flow itself
(`station.identity.oidc_views`) and verifies every ID token here: signature against the IdP's
JWKS with an asymmetric-algorithm allowlist (`none` and HS* refused), `iss`, `aud` (and `azp`
when several audiences), `exp`/`iat` with a small leeway, and the `nonce` bound to the browser
session that started the login.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from station.core.errors import InvalidInput
from station.identity import fetch

ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512", "EdDSA")
LEEWAY_SECONDS = 60
# An ID token issued longer ago than this is refused even if `exp` is far away.
MAX_TOKEN_AGE_SECONDS = 600
FETCH_TIMEOUT_SECONDS = 5
MAX_DOCUMENT_BYTES = 512 * 1024


class OidcError(Exception):
    """A refused OIDC step; `reason` is the audited code, the message stays generic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Endpoints:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


# --- URLs and fetching (SSRF-safe) -------------------------------------------------------------


# The guard is shared with SAML metadata by URL (station.identity.fetch); these names stay
# here for OIDC's callers, with OidcError as their exception.
clean_url = fetch.clean_url


@contextmanager
def _as_oidc_error() -> Iterator[None]:
    try:
        yield
    except fetch.FetchError as exc:
        raise OidcError(exc.reason, exc.detail) from exc


def check_destination(url: str) -> None:
    with _as_oidc_error():
        fetch.check_destination(url)


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise OidcError("fetch_failed", f"{what}: not JSON") from exc


def _read_json(response: requests.Response, what: str, deadline: float | None = None) -> Any:
    with _as_oidc_error():
        body = fetch.read_body(response, what, MAX_DOCUMENT_BYTES, deadline)
    return _json(body, what)


def get_json(url: str, what: str) -> Any:
    with _as_oidc_error():
        body = fetch.get(url, what, accept="application/json", max_bytes=MAX_DOCUMENT_BYTES)
    return _json(body, what)


def post_form(url: str, data: dict[str, str], auth: tuple[str, str], what: str) -> Any:
    clean_url(url, "url")
    check_destination(url)
    deadline = time.monotonic() + FETCH_TIMEOUT_SECONDS
    with fetch.session() as guarded:
        try:
            response = guarded.post(url, data=data, auth=auth, timeout=FETCH_TIMEOUT_SECONDS,
                                    allow_redirects=False, stream=True,
                                    headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise OidcError("token_request_failed", f"{what}: {type(exc).__name__}") from exc
        except fetch.FetchError as exc:  # the address changed since it was checked
            raise OidcError("token_request_failed", exc.detail) from exc
        try:
            return _read_json(response, what, deadline)
        except OidcError as exc:
            raise OidcError("token_request_failed", exc.detail) from exc


def discover(issuer: str) -> Endpoints:
    """Read the issuer's discovery document (an explicit admin action, never at login)."""
    issuer = clean_url(issuer, "issuer").rstrip("/")
    try:
        doc = get_json(f"{issuer}/.well-known/openid-configuration", "discovery document")
    except OidcError as exc:
        raise InvalidInput.field("issuer", f"Could not read the discovery document: "
                                           f"{exc.detail}.") from exc
    if not isinstance(doc, dict):
        raise InvalidInput.field("issuer", "The discovery document is not a JSON object.")
    if str(doc.get("issuer", "")).rstrip("/") != issuer:
        raise InvalidInput.field("issuer", "The discovery document names another issuer.")
    fields = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        fields[name] = clean_url(str(doc.get(name) or ""), name)
    return Endpoints(issuer=str(doc["issuer"]), **fields)


# --- ID tokens ------------------------------------------------------------------------------


def _key_for(jwks: Any, header: dict[str, Any], alg: str) -> Any:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise OidcError("invalid_jwks", "the JWKS has no keys")
    kid = header.get("kid")
    candidates = [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"
                  and (kid is None or k.get("kid") == kid)]
    if len(candidates) != 1:
        raise OidcError("unknown_key", f"no single signing key with kid {kid!r}")
    try:
        return jwt.PyJWK(candidates[0], algorithm=alg).key
    except jwt.PyJWTError as exc:
        raise OidcError("unknown_key", f"key {kid!r} does not fit {alg}") from exc


def verify_id_token(id_token: str, *, issuer: str, client_id: str, nonce: str,
                    jwks: Any, now: float | None = None) -> dict[str, Any]:
    """The ID token's claims, or OidcError with the reason it was refused."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise OidcError("invalid_id_token", "not a JWS") from exc
    alg = str(header.get("alg", ""))
    if alg not in ALLOWED_ALGORITHMS:
        raise OidcError("algorithm_not_allowed", f"alg {alg!r} is not accepted")
    key = _key_for(jwks, header, alg)
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token, key=key, algorithms=[alg], audience=client_id, issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "sub"], "verify_signature": True,
                     "verify_aud": True, "verify_iss": True, "verify_exp": True,
                     "verify_iat": True})
    except jwt.InvalidSignatureError as exc:
        raise OidcError("bad_signature", "signature does not verify") from exc
    except jwt.ExpiredSignatureError as exc:
        raise OidcError("expired", "exp is in the past") from exc
    except jwt.ImmatureSignatureError as exc:
        raise OidcError("not_yet_valid", "iat/nbf is in the future") from exc
    except jwt.InvalidAudienceError as exc:
        raise OidcError("wrong_audience", "aud does not name this client") from exc
    except jwt.InvalidIssuerError as exc:
        raise OidcError("wrong_issuer", "iss is not this connection's issuer") from exc
    except jwt.PyJWTError as exc:
        raise OidcError("invalid_id_token", str(exc)[:200]) from exc
    current = time.time() if now is None else now
    if float(claims["iat"]) < current - MAX_TOKEN_AGE_SECONDS - LEEWAY_SECONDS:
        raise OidcError("expired", "iat is too old")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise OidcError("wrong_audience", "several audiences and azp is not this client")
    got = claims.get("nonce")
    if not isinstance(got, str) or not nonce or not hmac.compare_digest(got, nonce):
        raise OidcError("wrong_nonce", "nonce missing or not the one this session sent")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise OidcError("invalid_id_token", "sub is empty")
    return claims


def groups_from(claims: dict[str, Any], claim: str) -> list[str]:
    if not claim:
        return []
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int)]
    return []
