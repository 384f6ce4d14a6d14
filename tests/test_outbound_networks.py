"""Where MCP servers over HTTP and model providers may be reached (station.core.egress,
STATION_OUTBOUND_NETWORKS): never link-local addresses (the cloud metadata service) by
default, public addresses only when the operator says "public"; judged before connecting
(a clear error naming the setting) and again by the transport for the very address it
connects to (no DNS rebinding)."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest

from station.core import egress
from station.providers import registry
from station.providers import services as providers
from station.providers.base import ProviderError
from station.tools import discovery
from station.tools import services as tools
from station.tools.models import McpServer
from tenants.authz import Principal
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture
from tests.tls_server import NAME, resolve_in_turn

WORKER = Principal.system("test worker")


@pytest.mark.parametrize("address", [
    "169.254.169.254", "fe80::1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe",
    "2002:a9fe:a9fe::1", "0.0.0.0", "::", "224.0.0.1", "240.0.0.1",  # noqa: S104
    "fd00:ec2::254", "100.100.100.200"])  # AWS IPv6 and Alibaba metadata services
def test_link_local_and_other_unusable_addresses_are_never_reached(address: str) -> None:
    assert not egress.is_reachable_for_tools(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["10.0.0.8", "192.168.1.20", "127.0.0.1", "::1",
                                     "fd00::5", "::ffff:10.0.0.8", "8.8.8.8"])
def test_private_networks_are_reachable_by_default_and_not_when_public_only(
        address: str, settings: Any) -> None:
    assert egress.is_reachable_for_tools(ipaddress.ip_address(address))
    settings.OUTBOUND_NETWORKS = "public"
    assert egress.is_reachable_for_tools(ipaddress.ip_address(address)) == (
        address == "8.8.8.8")


# --- the pinned transport -------------------------------------------------------------------


@pytest.fixture
def loopback() -> Iterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hosts.append(self.headers.get("Host", ""))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port, hosts
    server.shutdown()
    server.server_close()


def test_the_transport_connects_to_the_judged_address_keeping_the_name(
        loopback: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    port, hosts = loopback
    resolve_in_turn(monkeypatch, ["127.0.0.1"])
    with httpx2.Client(transport=egress.PinnedTransport(egress.is_reachable_for_tools)) as c:
        assert c.get(f"http://{NAME}:{port}/x").status_code == 204
    assert hosts == [f"{NAME}:{port}"]


def test_a_name_rebound_to_the_metadata_service_is_refused_at_connect(
        loopback: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    port, hosts = loopback
    looked_up = resolve_in_turn(monkeypatch, ["127.0.0.1", "169.254.169.254"])
    egress.check_tool_url(f"http://{NAME}:{port}/x")  # fine while first checked
    with httpx2.Client(transport=egress.PinnedTransport(egress.is_reachable_for_tools)) as c, \
            pytest.raises(httpx2.ConnectError, match="refused address"):
        c.get(f"http://{NAME}:{port}/x")
    assert looked_up == ["127.0.0.1", "169.254.169.254"] and hosts == []


def test_the_transport_tries_the_next_judged_address_when_one_refuses(
        loopback: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    # `localhost` often resolves to ::1 first while a server listens on 127.0.0.1 only.
    port, hosts = loopback
    resolve_in_turn_all(monkeypatch, ["::1", "127.0.0.1"])
    with httpx2.Client(transport=egress.PinnedTransport(egress.is_reachable_for_tools)) as c:
        assert c.get(f"http://{NAME}:{port}/x").status_code == 204
    assert hosts == [f"{NAME}:{port}"]


def test_an_environment_proxy_decides_instead_of_the_pin(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rule = egress.is_reachable_for_tools
    assert egress.pinned_transport("https://llm.example/v1", rule) is not None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    assert egress.pinned_transport("https://llm.example/v1", rule) is None
    monkeypatch.setenv("NO_PROXY", "llm.example")
    assert egress.pinned_transport("https://llm.example/v1", rule) is not None


# --- MCP servers and model providers ----------------------------------------------------------


def _discover(org: OrgFixture, url: str) -> discovery.DiscoveryResult:
    with org.scope():
        server = tools.create_mcp_server(actor=SYSTEM,
                                         environment=Environment.objects.get(slug="dev"),
                                         name="metadata", transport="http", url=url)
        server = McpServer.objects.select_related("environment").get(pk=server.pk)
        return discovery.discover(server, actor=WORKER, purpose="test discovery")


@pytest.mark.django_db
def test_an_mcp_server_on_the_metadata_service_is_refused_with_the_reason(
        org_a: OrgFixture) -> None:
    outcome = _discover(org_a, "http://169.254.169.254/latest/mcp")
    assert not outcome.ok
    assert "Refused to connect to the server (http://169.254.169.254/latest/mcp)" in outcome.error
    assert "cloud metadata service" in outcome.error and "STATION_OUTBOUND_NETWORKS" in \
        outcome.error


@pytest.mark.django_db
def test_public_only_refuses_an_mcp_server_on_loopback(org_a: OrgFixture, settings: Any,
                                                       loopback: tuple[int, list[str]]) -> None:
    settings.OUTBOUND_NETWORKS = "public"
    port, hosts = loopback
    outcome = _discover(org_a, f"http://127.0.0.1:{port}/mcp")
    assert not outcome.ok and "refused address (127.0.0.1)" in outcome.error
    assert hosts == []


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_provider_pointed_at_the_metadata_service_is_a_config_error(
        org_a: OrgFixture, settings: Any, kind: str) -> None:
    settings.VAULT_REVEAL_ALLOWED = True  # the worker's side
    from station.vault import services as vault

    with org_a.scope():
        env = Environment.objects.get(slug="staging")
        vault.set_secret(actor=SYSTEM, environment=env, name="KEY", value="sk-canary-7781")
        providers.create_provider(actor=SYSTEM, environment=env, name="gw", kind=kind,
                                  base_url="http://169.254.169.254/v1",
                                  api_key="${secret:KEY}", max_retries=0)
        with pytest.raises(ProviderError) as refused:
            registry.connect(env, "gw", actor=SYSTEM, purpose="run")
    assert refused.value.kind == "config"
    assert "169.254.169.254" in str(refused.value) and "sk-canary-7781" not in str(
        refused.value)
    assert "cloud metadata service" in str(refused.value)


@pytest.mark.django_db
def test_a_provider_name_resolving_to_the_metadata_service_is_refused_at_connect(
        org_a: OrgFixture, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # No lookup while the run sets up (no I/O in its transaction): the transport refuses.
    settings.VAULT_REVEAL_ALLOWED = True
    from station.providers.base import Message, ModelRequest
    from station.vault import services as vault

    resolve_in_turn(monkeypatch, ["169.254.169.254"])
    with org_a.scope():
        env = Environment.objects.get(slug="staging")
        vault.set_secret(actor=SYSTEM, environment=env, name="KEY", value="sk-canary-7782")
        providers.create_provider(actor=SYSTEM, environment=env, name="gw", kind="openai",
                                  base_url=f"http://{NAME}/v1", api_key="${secret:KEY}",
                                  max_retries=0)
        provider, _ = registry.connect(env, "gw", actor=SYSTEM, purpose="run")
    try:
        with pytest.raises(ProviderError) as refused:
            provider.complete(ModelRequest(model="m", messages=[Message("user", "hi")]))
    finally:
        provider.close()
    assert refused.value.kind == "connection"
    assert "refused address (169.254.169.254)" in str(refused.value)
    assert "sk-canary-7782" not in str(refused.value)


def resolve_in_turn_all(monkeypatch: pytest.MonkeyPatch, addresses: list[str]) -> None:
    """Resolve NAME to all of `addresses` at once (in that order)."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM,
                 socket.IPPROTO_TCP, "", (a, int(port or 0))) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
