"""The SSO fetch guard connects to the address it judged (station/identity/fetch.py): a host
name that resolves to a public address for the check and to a private one a moment later (DNS
rebinding) is refused, and a pinned connection still checks the server's certificate against
the host name. The resolver is replaced so the test needs no DNS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from station.identity import fetch, oidc
from tests.tls_server import NAME, PUBLIC, TlsServer, resolve_in_turn, tls_server, trust_loopback


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TlsServer]:
    with tls_server(tmp_path, monkeypatch) as served:
        yield served


def test_a_name_rebound_to_a_private_address_after_the_check_is_refused(
        tls: TlsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Public while checked, loopback (where the server is) for any later lookup.
    looked_up = resolve_in_turn(monkeypatch, [PUBLIC, "127.0.0.1"])
    with pytest.raises(fetch.FetchError) as refused:
        fetch.get(f"https://{NAME}:{tls.port}/metadata", "metadata",
                  accept="application/xml", max_bytes=1024)
    assert refused.value.reason == "fetch_refused"
    assert "non-public address" in refused.value.detail
    assert looked_up == [PUBLIC, "127.0.0.1"] and tls.hosts == []  # never connected


def test_the_oidc_token_request_is_pinned_too(
        tls: TlsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_in_turn(monkeypatch, [PUBLIC, "127.0.0.1"])
    with pytest.raises(oidc.OidcError) as refused:
        oidc.post_form(f"https://{NAME}:{tls.port}/token", {"grant_type": "x"},
                       ("client", "secret"), "token request")
    assert refused.value.reason == "token_request_failed"
    assert "non-public address" in refused.value.detail and tls.hosts == []


def test_a_pinned_connection_keeps_the_host_name_for_tls_and_the_host_header(
        tls: TlsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    trust_loopback(monkeypatch)
    looked_up = resolve_in_turn(monkeypatch, ["127.0.0.1"])
    body = fetch.get(f"https://{NAME}:{tls.port}/metadata", "metadata",
                     accept="application/json", max_bytes=1024)
    assert body == b'{"ok": true}'
    assert tls.hosts == [f"{NAME}:{tls.port}"]
    assert len(looked_up) == 2  # the early check and the connection's own: both judged
    assert oidc.post_form(f"https://{NAME}:{tls.port}/token", {"grant_type": "x"},
                          ("client", "secret"), "token request") == {"ok": True}


def test_a_pinned_connection_still_refuses_a_certificate_for_another_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trust_loopback(monkeypatch)
    resolve_in_turn(monkeypatch, ["127.0.0.1"])
    with tls_server(tmp_path, monkeypatch, "someone-else.test") as served, \
            pytest.raises(fetch.FetchError) as failed:
        fetch.get(f"https://{NAME}:{served.port}/metadata", "metadata",
                  accept="application/json", max_bytes=1024)
    assert failed.value.reason == "fetch_failed" and "SSLError" in failed.value.detail
