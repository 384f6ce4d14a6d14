"""Outbound HTTP for single sign-on set-up, guarded against SSRF: OIDC discovery, token and JWKS
requests, and SAML IdP metadata by URL all go through here.

An org admin chooses these URLs, so the server must not become their proxy into the private
network: https only, no credentials in the URL, every address the host resolves to must be
public (not loopback, private, link-local — the cloud metadata service — or reserved), no
redirects followed, a timeout and a size cap. `STATION_SSO_ALLOW_PRIVATE_NETWORKS` (formerly
`STATION_OIDC_ALLOW_PRIVATE_NETWORKS`, still honoured) lifts the scheme and address rules, for
a test IdP on loopback.

The address rule and the resolve-once-then-connect technique are `station.core.egress`'s:
`session()`'s adapter connects to an address it judged, with the URL's host name kept for the
Host header, SNI and the certificate check, so a name that resolves to a public address for
the check and to a private one a moment later (DNS rebinding) cannot slip through. The
adapter follows requests-hardened's technique; that library is not used because its address
rule is weaker than ours (it passes IPv4-compatible IPv6 addresses) and it judges only the
first address.

Known gap: the whole-fetch deadline applies from the first body byte on (the status line and
headers are bounded only by the per-read timeout).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter

from station.core import egress
from station.core.errors import InvalidInput

TIMEOUT_SECONDS = 5
MAX_URL_LENGTH = 2000


class FetchError(Exception):
    """A refused or failed fetch; `reason` is a short code (`fetch_refused`, `fetch_failed`),
    `detail` a sentence fit for an admin (never a secret)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def private_networks_allowed() -> bool:
    return bool(getattr(settings, "SSO_ALLOW_PRIVATE_NETWORKS", False)
                or getattr(settings, "OIDC_ALLOW_PRIVATE_NETWORKS", False))


def clean_url(raw: str, field: str) -> str:
    """An https:// URL without credentials (http:// too when private networks are allowed);
    otherwise InvalidInput naming `field`."""
    url = (raw or "").strip()
    parts = urlsplit(url)
    schemes = ("https", "http") if private_networks_allowed() else ("https",)
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
        raise InvalidInput.field(field, "Give an https:// URL without credentials.")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput.field(field, f"At most {MAX_URL_LENGTH} characters.")
    return url


# The address rule is shared with every tenant-URL client (station.core.egress).
is_public = egress.is_public


def _judged_addresses(host: str, port: int | None = None) -> list[str]:
    """Every address `host` resolves to, each judged public (FetchError otherwise)."""
    try:
        return egress.judged_addresses(host, port)
    except egress.NotPublic as exc:
        raise FetchError("fetch_refused" if exc.reason == "not_public" else "fetch_failed",
                         exc.detail) from exc


def check_destination(url: str) -> None:
    """Refuse hosts that resolve to loopback, private, link-local or other non-public addresses
    unless private networks are allowed (an early, clear refusal; `session()` judges again
    the addresses it connects to)."""
    if private_networks_allowed():
        return
    _judged_addresses(urlsplit(url).hostname or "")


class _PinnedAddressAdapter(HTTPAdapter):
    """Connects to an address it judged public: resolves the host itself, judges every
    address and connects to the first, keeping the host name for the Host header, SNI and
    certificate verification (so no second lookup can hand the client another address)."""

    def build_connection_pool_key_attributes(
            self, request: requests.PreparedRequest, verify: bool | str,
            cert: str | tuple[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        if private_networks_allowed():
            return host_params, pool_kwargs
        host, port = host_params["host"], host_params["port"]
        address = _judged_addresses(host, port)[0]
        name = egress.url_host(host)
        request.headers["Host"] = name if port is None else f"{name}:{port}"
        if host_params["scheme"] == "https":
            pool_kwargs["assert_hostname"] = host
            pool_kwargs["server_hostname"] = host
        host_params["host"] = egress.url_host(address)
        return host_params, pool_kwargs


def session() -> requests.Session:
    """A requests session whose every connection goes through the guard's address check,
    made at connection time (use with `with`)."""
    guarded = requests.Session()
    adapter = _PinnedAddressAdapter()
    guarded.mount("https://", adapter)
    guarded.mount("http://", adapter)
    return guarded


def read_body(response: requests.Response, what: str, max_bytes: int,
              deadline: float | None = None) -> bytes:
    """The body of a 200 response (streamed), refused past `max_bytes` or past `deadline`
    (time.monotonic()). requests' timeout bounds each socket read, not the whole body, so a
    server dripping a byte every few seconds would otherwise hold a web thread for minutes."""
    if response.is_redirect:
        raise FetchError("fetch_failed", f"{what}: redirects are not followed")
    if response.status_code != 200:
        raise FetchError("fetch_failed", f"{what}: HTTP {response.status_code}")
    deadline = deadline if deadline is not None else time.monotonic() + TIMEOUT_SECONDS
    body = bytearray()
    try:
        # read1: whatever has arrived (a plain read would wait to fill its buffer, so the
        # deadline would be checked only at the end).
        while chunk := response.raw.read1(8192, decode_content=True):
            body += chunk
            if len(body) > max_bytes:
                raise FetchError("fetch_failed", f"{what}: larger than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise FetchError("fetch_failed",
                                 f"{what}: took longer than {TIMEOUT_SECONDS} s")
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise FetchError("fetch_failed", f"{what}: {type(exc).__name__}") from exc
    return bytes(body)


def get(url: str, what: str, *, accept: str, max_bytes: int) -> bytes:
    """GET `url` through the guard; the body, or FetchError. A bad URL is InvalidInput on
    the field `url`: callers that know the field validate with `clean_url` first."""
    clean_url(url, "url")
    check_destination(url)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    with session() as guarded:
        try:
            response = guarded.get(url, timeout=TIMEOUT_SECONDS, allow_redirects=False,
                                   stream=True, headers={"Accept": accept})
        except requests.RequestException as exc:
            raise FetchError("fetch_failed", f"{what}: {type(exc).__name__}") from exc
        with response:
            return read_body(response, what, max_bytes, deadline)
