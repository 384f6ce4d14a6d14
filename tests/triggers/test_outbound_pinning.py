"""Outbound webhooks connect to the address they judged (station/triggers/deliveries.py,
station.core.egress): a receiver host name rebound to a private address after the check is
refused — its response would otherwise be stored in the delivery log for the org to read —
and a pinned delivery still checks the receiver's certificate against its name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from station.triggers import deliveries
from tests.tls_server import NAME, PUBLIC, resolve_in_turn, tls_server, trust_loopback


@pytest.fixture(autouse=True)
def guarded(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False


def _send(port: int) -> deliveries.Outcome:
    return deliveries.send(f"https://{NAME}:{port}/hook", "whsec-test", b'{"event":"x"}',
                           {"Station-Event": "run.succeeded"})


def test_a_receiver_rebound_to_a_private_address_after_the_check_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Public while checked, loopback (where a server answers) when the client connects: the
    # transport judges the address it connects to, so the delivery never reaches it (its
    # answer would be stored in the delivery log for the org to read).
    looked_up = resolve_in_turn(monkeypatch, [PUBLIC, "127.0.0.1"])
    with tls_server(tmp_path, monkeypatch) as served:
        outcome = _send(served.port)
    assert looked_up == [PUBLIC, "127.0.0.1"] and served.hosts == []
    assert outcome.code is None and not outcome.permanent  # retried, like any connect error
    assert "non-public address (127.0.0.1)" in outcome.error


def test_a_receiver_resolving_to_a_private_address_is_refused_permanently(
        monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_in_turn(monkeypatch, ["169.254.169.254"])
    outcome = _send(443)
    assert outcome.permanent and outcome.code is None
    assert "non-public address (169.254.169.254)" in outcome.error


def test_a_pinned_delivery_keeps_the_name_for_tls_and_the_host_header(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trust_loopback(monkeypatch)
    looked_up = resolve_in_turn(monkeypatch, ["127.0.0.1"])
    with tls_server(tmp_path, monkeypatch) as served:
        outcome = _send(served.port)
    assert outcome.ok, outcome.error
    assert served.hosts == [f"{NAME}:{served.port}"]
    assert looked_up == ["127.0.0.1", "127.0.0.1"]  # the early check, the connection's own


def test_a_pinned_delivery_refuses_a_certificate_for_another_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trust_loopback(monkeypatch)
    resolve_in_turn(monkeypatch, ["127.0.0.1"])
    with tls_server(tmp_path, monkeypatch, "someone-else.test") as served:
        outcome = _send(served.port)
    assert outcome.code is None and served.hosts == []
    assert "certificate" in outcome.error.lower() or "ssl" in outcome.error.lower()


def test_an_internationalised_receiver_name_is_sent_in_its_ascii_form(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    ascii_name = "xn--bcher-kva.example"
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != ascii_name:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 ("127.0.0.1", int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    trust_loopback(monkeypatch)
    with tls_server(tmp_path, monkeypatch, ascii_name) as served:
        outcome = deliveries.send(f"https://bücher.example:{served.port}/hook", "whsec-test",
                                  b"{}", {})
    assert outcome.ok, outcome.error
    assert asked == [ascii_name, ascii_name]
    assert served.hosts == [f"{ascii_name}:{served.port}"]  # and the certificate matched


@pytest.mark.parametrize("url", ["https://hooks.example:99999/x", "https://hooks.example:0/x",
                                 "https://hooks.example:abc/x"])
def test_a_receiver_url_with_an_impossible_port_ends_recorded_not_stuck(url: str) -> None:
    # A URL stored before ports were validated: the attempt ends (permanently), with why.
    outcome = deliveries.send(url, "whsec-test", b"{}", {})
    assert outcome.permanent and outcome.code is None and "invalid URL" in outcome.error


@pytest.mark.django_db
@pytest.mark.parametrize("port", ["99999", "0", "abc"])
def test_creating_a_webhook_with_an_impossible_port_names_the_field(org_a: Any,
                                                                     port: str) -> None:
    from station.core.errors import InvalidInput
    from station.triggers import services
    from tenants.models import Environment
    from tests.fixtures import SYSTEM

    with org_a.scope(), pytest.raises(InvalidInput) as refused:
        services.create_outbound_webhook(actor=SYSTEM,
                                         environment=Environment.objects.get(slug="dev"),
                                         url=f"https://hooks.example:{port}/station")
    assert refused.value.errors == {"url": ["The port must be a number from 1 to 65535."]}
