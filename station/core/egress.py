"""Where Station may connect when a URL comes from a tenant (SSO metadata, OIDC endpoints,
outbound webhooks): public addresses only, judged once and then connected to.

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

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

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


def judged_addresses(host: str, port: int | None = None) -> list[str]:
    """Every address `host` resolves to, each judged public; NotPublic otherwise. Connect to
    one of these, never to the name (a second lookup may answer differently)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise NotPublic("unresolvable", f"cannot resolve {host!r}") from exc
    addresses = [str(info[4][0]).split("%")[0] for info in infos
                 if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise NotPublic("unresolvable", f"cannot resolve {host!r}")
    for address in addresses:
        if not is_public(ipaddress.ip_address(address)):
            raise NotPublic("not_public",
                            f"{host} resolves to a non-public address ({address})")
    return addresses


def url_host(address: str) -> str:
    """`address` as it appears in a URL's or Host header's host part (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address
