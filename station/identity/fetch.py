"""Outbound HTTP for single sign-on set-up, guarded against SSRF: OIDC discovery, token and JWKS
requests, and SAML IdP metadata by URL all go through here.

An org admin chooses these URLs, so the server must not become their proxy into the private
network: https only, no credentials in the URL, every address the host resolves to must be
public (not loopback, private, link-local — the cloud metadata service — or reserved), no
redirects followed, a timeout and a size cap. `STATION_SSO_ALLOW_PRIVATE_NETWORKS` (formerly
`STATION_OIDC_ALLOW_PRIVATE_NETWORKS`, still honoured) lifts the scheme and address rules, for
a test IdP on loopback.

Known gaps: the host is resolved here and again by the HTTP client (a DNS-rebinding window);
the whole-fetch deadline applies from the first body byte on (the status line and headers are
bounded only by the per-read timeout).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings

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


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, IPv4-compatible): such an
    address reaches that IPv4 host, so it is judged by it (`is_global` alone passes some)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if not address.is_global:
        return False
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return embedded is None or embedded.is_global


def check_destination(url: str) -> None:
    """Refuse hosts that resolve to loopback, private, link-local or other non-public addresses
    unless private networks are allowed."""
    if private_networks_allowed():
        return
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise FetchError("fetch_failed", f"cannot resolve {host!r}") from exc
    for info in infos:
        if not is_public(ipaddress.ip_address(str(info[4][0]).split("%")[0])):
            raise FetchError("fetch_refused", f"{host} resolves to a non-public address")


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
    try:
        response = requests.get(url, timeout=TIMEOUT_SECONDS, allow_redirects=False,
                                stream=True, headers={"Accept": accept})
    except requests.RequestException as exc:
        raise FetchError("fetch_failed", f"{what}: {type(exc).__name__}") from exc
    with response:
        return read_body(response, what, max_bytes, deadline)
