"""Where Station may connect when a URL comes from a tenant, judged once and then connected to.

Two rules. `is_public`, for SSO metadata and OIDC endpoints and for outbound webhooks:
public addresses only. `is_reachable_for_tools`, for MCP servers over HTTP and model
providers' base URLs, set by the operator (`STATION_OUTBOUND_NETWORKS`): "private" (the
default: a self-hosted Station reaches internal MCP servers and model gateways, but never
link-local addresses — the cloud metadata service — nor unspecified, multicast or reserved
ones) or "public" (as `is_public`, for a deployment shared by organizations that must not
reach its network).

One rule for every such client, so that they cannot drift apart: an address is public when
it is globally routable and, for an IPv6 address that carries an IPv4 one (IPv4-mapped,
6to4, NAT64, IPv4-compatible), when that IPv4 address is too, since the packet reaches the
IPv4 host. `judged_addresses` resolves a host and judges every address; clients then
connect to one of *those* addresses (keeping the host name for the Host header, SNI and the
certificate check) rather than resolving again, which closes the DNS-rebinding window (a
name that is public when checked and private a moment later).
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services outside link-local space: AWS's IPv6 one (Nitro) is unique-local,
# Alibaba's sits in the carrier-grade NAT block; both are otherwise "private" addresses.
_METADATA_SERVICES = frozenset({ipaddress.ip_address("fd00:ec2::254"),
                                ipaddress.ip_address("100.100.100.200")})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class NotPublic(Exception):
    """The host cannot be resolved (`reason` "unresolvable") or resolves to an address that
    is not public ("not_public"); `detail` is a sentence fit for an admin."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


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


def is_public(address: Address) -> bool:
    if not address.is_global:
        return False
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return embedded is None or embedded.is_global


def is_reachable_for_tools(address: Address) -> bool:
    """The operator's rule for MCP servers and model providers (see the module doc). An
    IPv6 address carrying an IPv4 one is judged by that IPv4 address."""
    if getattr(settings, "OUTBOUND_NETWORKS", "private") == "public":
        return is_public(address)
    if isinstance(address, ipaddress.IPv6Address):
        address = _embedded_ipv4(address) or address
    return not (address.is_link_local or address.is_unspecified or address.is_multicast
                or (address.is_reserved and not address.is_loopback)
                or address in _METADATA_SERVICES)


def judged_addresses(host: str, port: int | None = None,
                     rule: Callable[[Address], bool] | None = None) -> list[str]:
    """Every address `host` resolves to, each passing `rule` (default `is_public`); NotPublic
    otherwise. Connect to one of these, never to the name (a second lookup may answer
    differently)."""
    rule = rule or is_public
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise NotPublic("unresolvable", f"cannot resolve {host!r}") from exc
    addresses = [str(info[4][0]).split("%")[0] for info in infos
                 if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise NotPublic("unresolvable", f"cannot resolve {host!r}")
    for address in addresses:
        if not rule(ipaddress.ip_address(address)):
            kind = "non-public" if rule is is_public else "refused"
            raise NotPublic("not_public", f"{host} resolves to a {kind} address ({address})")
    return addresses


def url_host(address: str) -> str:
    """`address` as it appears in a URL's or Host header's host part (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def _is_address(raw_host: bytes) -> bool:
    try:
        ipaddress.ip_address(raw_host.decode("ascii"))
    except ValueError:
        return False
    return True


def _judged(request: httpx2.Request, rule: Callable[[Address], bool]) -> tuple[str, list[str]]:
    """The request's host (ASCII) and its addresses, every one passing `rule`; httpx
    ConnectError (what SDKs treat as a connection failure) when one is refused."""
    host = request.url.raw_host.decode("ascii")
    try:
        addresses = judged_addresses(host, request.url.port, rule)
    except NotPublic as exc:
        raise httpx2.ConnectError(exc.detail, request=request) from exc
    return host, list(dict.fromkeys(addresses))


def _aimed(request: httpx2.Request, host: str, address: str) -> httpx2.Request:
    """`request` sent to `address`, the name kept for the Host header (httpx set it from the
    URL), SNI and the certificate check."""
    extensions = dict(request.extensions)
    if request.url.scheme == "https":
        extensions["sni_hostname"] = host
    return httpx2.Request(request.method, request.url.copy_with(host=address),
                          headers=request.headers, stream=request.stream, extensions=extensions)


class PinnedTransport(httpx2.HTTPTransport):
    """An httpx transport that connects only to addresses passing `rule`: it resolves the
    host itself, judges every address and tries them in order (as httpx would: `localhost`
    may answer on 127.0.0.1 only after ::1 refused), never resolving again."""

    def __init__(self, rule: Callable[[Address], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rule = rule

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        host, addresses = _judged(request, self._rule)
        for address in addresses[:-1]:
            try:  # a failed connect sent nothing: the next address may take the request
                return super().handle_request(_aimed(request, host, address))
            except httpx2.ConnectError:
                continue
        return super().handle_request(_aimed(request, host, addresses[-1]))


class PinnedAsyncTransport(httpx2.AsyncHTTPTransport):
    """PinnedTransport for asynchronous clients (MCP over HTTP); the lookup runs in a thread
    so a slow resolver does not stall the event loop's other sessions."""

    def __init__(self, rule: Callable[[Address], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rule = rule

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if _is_address(request.url.raw_host):  # nothing to look up: no thread hop
            host, addresses = _judged(request, self._rule)
        else:
            host, addresses = await anyio.to_thread.run_sync(_judged, request, self._rule)
        for address in addresses[:-1]:
            try:
                return await super().handle_async_request(_aimed(request, host, address))
            except httpx2.ConnectError:
                continue
        return await super().handle_async_request(_aimed(request, host, addresses[-1]))


def _proxied(url: str) -> bool:
    """Whether an HTTP(S) proxy from the environment applies to `url` (then the proxy
    resolves the name and decides where requests go; Station cannot pin an address)."""
    parsed = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parsed.scheme) or proxies.get("all")
    return bool(proxy) and not urllib.request.proxy_bypass(parsed.hostname or "")


def pinned_transport(url: str, rule: Callable[[Address], bool], **kwargs: Any
                     ) -> PinnedTransport | None:
    """A PinnedTransport for a client of `url`, or None (the client's default transport,
    with the environment's proxies) when a proxy applies to it."""
    return None if _proxied(url) else PinnedTransport(rule, **kwargs)


def pinned_async_transport(url: str, rule: Callable[[Address], bool], **kwargs: Any
                           ) -> PinnedAsyncTransport | None:
    return None if _proxied(url) else PinnedAsyncTransport(rule, **kwargs)


def check_tool_url(url: str) -> None:
    """NotPublic when `url`'s host resolves to an address the operator's rule for MCP servers
    and model providers refuses (an early, clear refusal; the pinned transports judge the
    addresses they connect to again)."""
    parsed = httpx2.URL(url)
    judged_addresses(parsed.raw_host.decode("ascii"), parsed.port, is_reachable_for_tools)


def check_tool_url_literal(url: str) -> None:
    """check_tool_url for a URL whose host is an IP address; nothing for a name (no lookup:
    for callers that must not do I/O, the transport judges names when it connects)."""
    host = httpx2.URL(url).raw_host.decode("ascii")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not is_reachable_for_tools(address):
        raise NotPublic("not_public", f"{host} is a refused address")
