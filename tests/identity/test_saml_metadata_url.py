"""SAML IdP metadata by URL: read once when the admin saves (or refreshes), through the SSO
fetch guard (https, public addresses, no redirects, size cap); every refusal names the field
and saves nothing; a sign-in never fetches it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.test import Client

from audit.models import AuditEvent
from station.core.errors import InvalidInput
from station.identity import fetch, services
from station.identity.models import SamlConnection
from tests.fixtures import SYSTEM, OrgFixture
from tests.identity.conftest import IDP_ENTITY, IDP_SSO, verify_domain_directly
from tests.identity.idp import LoopbackSamlIdp, Served, make_keypair, metadata_xml

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp() -> Iterator[LoopbackSamlIdp]:
    server = LoopbackSamlIdp()
    yield server
    server.close()


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.SSO_ALLOW_PRIVATE_NETWORKS = True  # the test IdP listens on 127.0.0.1


def _events(fx: OrgFixture) -> list[AuditEvent]:
    with fx.scope():
        return list(AuditEvent.objects.filter(action="identity.saml_configured")
                    .order_by("sequence"))


def _refused(fx: OrgFixture, message: str, **kwargs: Any) -> None:
    with fx.scope(), pytest.raises(InvalidInput) as info:
        services.configure_saml(actor=SYSTEM, org=fx.org, **kwargs)
    errors = info.value.errors or {}
    assert list(errors) == ["metadata_url"], errors
    assert message.lower() in " ".join(errors["metadata_url"]).lower(), errors


def test_metadata_url_configures_the_idp_and_keeps_the_url(
        org_a: OrgFixture, idp: LoopbackSamlIdp, loopback_allowed: None) -> None:
    with org_a.scope():
        connection = services.configure_saml(actor=SYSTEM, org=org_a.org,
                                             metadata_url=f"  {idp.metadata_url} ")
    assert (connection.idp_entity_id, connection.idp_sso_url) == (idp.entity_id, idp.sso_url)
    assert connection.idp_x509cert == idp.keys.cert_body
    assert connection.metadata_url == idp.metadata_url
    assert connection.metadata_fetched_at is not None
    assert connection.metadata_xml == idp.metadata()
    assert idp.paths == ["/metadata"]
    [event] = _events(org_a)
    assert event.changes["metadata_fetched_from"] == idp.metadata_url
    assert event.changes["metadata_url"]["to"] == idp.metadata_url


def test_the_former_oidc_switch_still_lets_a_loopback_idp_through(
        org_a: OrgFixture, idp: LoopbackSamlIdp, settings: Any) -> None:
    settings.SSO_ALLOW_PRIVATE_NETWORKS = False
    settings.OIDC_ALLOW_PRIVATE_NETWORKS = True
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, metadata_url=idp.metadata_url)
        assert SamlConnection.objects.get().metadata_url == idp.metadata_url


def test_refresh_reads_the_url_again_and_audits_the_new_certificate(
        org_a: OrgFixture, idp: LoopbackSamlIdp, loopback_allowed: None) -> None:
    with org_a.scope():
        first = services.configure_saml(actor=SYSTEM, org=org_a.org,
                                        metadata_url=idp.metadata_url, enforce_sso=True)
    old_cert = first.idp_x509cert
    idp.keys = make_keypair("Rolled-over IdP key")  # the IdP rotates its signing key
    with org_a.scope():
        refreshed = services.configure_saml(actor=SYSTEM, org=org_a.org,
                                            refresh_metadata=True)
    assert refreshed.idp_x509cert == idp.keys.cert_body != old_cert
    assert refreshed.enforce_sso  # settings are kept
    assert idp.paths == ["/metadata", "/metadata"]
    event = _events(org_a)[-1]
    assert event.changes["idp_x509cert"] == {"from": f"…{old_cert[-16:]}",
                                             "to": f"…{idp.keys.cert_body[-16:]}"}
    assert event.changes["metadata_fetched_from"] == idp.metadata_url
    # Refreshing an unchanged IdP is still recorded: the admin re-read it.
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, refresh_metadata=True)
    assert _events(org_a)[-1].changes == {"metadata_fetched_from": idp.metadata_url}


def test_a_failed_refresh_keeps_the_idp_as_it_was(
        org_a: OrgFixture, idp: LoopbackSamlIdp, loopback_allowed: None) -> None:
    with org_a.scope():
        before = services.configure_saml(actor=SYSTEM, org=org_a.org,
                                         metadata_url=idp.metadata_url)
    idp.served["/metadata"] = Served(body=metadata_xml(idp.entity_id, idp.sso_url, None)
                                     .encode())
    _refused(org_a, "signing certificate", refresh_metadata=True)
    with org_a.scope():
        after = SamlConnection.objects.get()
    assert (after.idp_x509cert, after.metadata_fetched_at) == (
        before.idp_x509cert, before.metadata_fetched_at)
    assert len(_events(org_a)) == 1


def test_pasted_values_replace_the_url(org_a: OrgFixture, idp: LoopbackSamlIdp,
                                       loopback_allowed: None, idp_keys: Any) -> None:
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, metadata_url=idp.metadata_url)
        connection = services.configure_saml(actor=SYSTEM, org=org_a.org, entity_id=IDP_ENTITY,
                                             sso_url=IDP_SSO, x509cert=idp_keys.cert_pem)
    assert (connection.metadata_url, connection.metadata_xml) == ("", "")
    assert connection.metadata_fetched_at is None
    _refused(org_a, "not set from a metadata URL", refresh_metadata=True)


def test_refresh_without_any_connection_is_a_field_error(org_a: OrgFixture) -> None:
    _refused(org_a, "not set from a metadata URL", refresh_metadata=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BIG = b"<x>" + b" " * (300 * 1024) + b"</x>"


@pytest.mark.parametrize(("served", "message"), [
    (Served(body=BIG), "larger than 262144 bytes"),
    (Served(body=b"<not-xml"), "not well-formed"),
    (Served(body=b'<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'), "entities are refused"),
    (Served(body=b"<html><body>Sign in</body></html>"), "No IDPSSODescriptor"),
    (Served(body=b"\xff\xfe<\x00x\x00>\x00"), "not UTF-8"),
    (Served(status=302, headers={"Location": "http://169.254.169.254/"}),
     "redirects are not followed"),
    (Served(status=404, body=b"gone"), "HTTP 404"),
], ids=["oversized", "malformed", "entities", "not-metadata", "not-utf8", "redirect", "404"])
def test_bad_metadata_at_the_url_is_refused_and_nothing_is_saved(
        org_a: OrgFixture, idp: LoopbackSamlIdp, loopback_allowed: None, served: Served,
        message: str) -> None:
    idp.served["/metadata"] = served
    _refused(org_a, message, metadata_url=idp.metadata_url)
    with org_a.scope():
        assert not SamlConnection.objects.exists()
    assert _events(org_a) == []


def test_metadata_without_a_signing_certificate_is_refused(
        org_a: OrgFixture, idp: LoopbackSamlIdp, loopback_allowed: None) -> None:
    idp.served["/metadata"] = Served(body=metadata_xml(idp.entity_id, idp.sso_url, None)
                                     .encode())
    _refused(org_a, "no signing certificate", metadata_url=idp.metadata_url)
    with org_a.scope():
        assert not SamlConnection.objects.exists()


def test_unreachable_url_is_refused(org_a: OrgFixture, loopback_allowed: None) -> None:
    _refused(org_a, "Could not fetch the metadata: 127.0.0.1: ConnectionError",
             metadata_url=f"http://127.0.0.1:{_closed_port()}/metadata")
    with org_a.scope():
        assert not SamlConnection.objects.exists()


@pytest.mark.parametrize(("url", "message"), [
    ("https://127.0.0.1:{port}/metadata", "127.0.0.1 resolves to a non-public address"),
    ("https://localhost:{port}/metadata", "only from public addresses"),
    ("https://[::1]:{port}/metadata", "non-public address"),
    ("https://169.254.169.254/latest/meta-data/", "non-public address"),
    ("https://10.0.0.8/metadata", "non-public address"),
    # IPv6 forms that carry an IPv4 address and pass `is_global` by themselves.
    ("https://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "non-public address"),  # NAT64
    ("https://[2002:a9fe:a9fe::1]/metadata", "non-public address"),  # 6to4
    ("https://[::127.0.0.1]/metadata", "non-public address"),  # IPv4-compatible
    ("https://[::ffff:10.0.0.8]/metadata", "non-public address"),  # IPv4-mapped
    ("http://127.0.0.1:{port}/metadata", "https://"),
    ("http://idp.example.com/metadata", "https://"),
    ("https://user:pw@idp.example.com/metadata", "without credentials"),
    ("ftp://idp.example.com/metadata", "https://"),
], ids=["loopback", "localhost", "ipv6-loopback", "cloud-metadata", "private", "nat64",
        "6to4", "ipv4-compatible", "ipv4-mapped", "http-loopback", "http", "credentials",
        "ftp"])
def test_private_addresses_and_non_https_are_refused_by_default(
        org_a: OrgFixture, idp: LoopbackSamlIdp, url: str, message: str) -> None:
    assert not fetch.private_networks_allowed()
    port = idp.base.rsplit(":", 1)[1]
    _refused(org_a, message, metadata_url=url.format(port=port))
    assert idp.paths == []  # refused before any connection
    with org_a.scope():
        assert not SamlConnection.objects.exists()
    assert _events(org_a) == []


def test_url_and_pasted_values_together_are_refused(
        org_a: OrgFixture, idp: LoopbackSamlIdp, loopback_allowed: None) -> None:
    _refused(org_a, "only one of them", metadata_url=idp.metadata_url,
             metadata_xml=idp.metadata())
    assert idp.paths == []


def test_api_sets_and_refreshes_from_a_url_and_names_the_field_on_errors(
        org_a: OrgFixture, idp: LoopbackSamlIdp, settings: Any) -> None:
    client = org_a.client("owner")
    refused = client.put("/api/v1/sso/saml", {"metadata_url": idp.metadata_url}, format="json")
    assert refused.status_code == 422  # loopback, and the switch is off
    assert [e["field"] for e in refused.json()["errors"]] == ["metadata_url"]
    settings.SSO_ALLOW_PRIVATE_NETWORKS = True
    ok = client.put("/api/v1/sso/saml", {"metadata_url": idp.metadata_url}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["metadata_url"] == idp.metadata_url
    assert ok.json()["idp_entity_id"] == idp.entity_id
    assert ok.json()["metadata_fetched_at"]
    idp.keys = make_keypair("Rolled-over IdP key")
    again = client.put("/api/v1/sso/saml", {"refresh_metadata": True}, format="json")
    assert again.status_code == 200, again.content
    assert again.json()["idp_x509cert"] == idp.keys.cert_body
    assert client.get("/api/v1/sso/saml").json()["metadata_url"] == idp.metadata_url


def test_console_saves_from_a_url_and_refreshes(
        login: Any, org_a: OrgFixture, idp: LoopbackSamlIdp, loopback_allowed: None) -> None:
    client = login(org_a.owner)
    form = {"enabled": "on", "default_role": "viewer", "group_attribute": "groups"}
    idp.served["/metadata"] = Served(body=b"<html/>")
    bad = client.post("/o/acme/sso/", {**form, "metadata_url": idp.metadata_url})
    assert bad.status_code == 200 and b"No IDPSSODescriptor" in bad.content
    del idp.served["/metadata"]
    ok = client.post("/o/acme/sso/", {**form, "metadata_url": idp.metadata_url})
    assert ok.status_code == 302
    page = client.get("/o/acme/sso/")
    assert f"Metadata read from <code>{idp.metadata_url}</code>".encode() in page.content
    assert b"Refresh from URL" in page.content
    # Saving settings alone does not fetch again; the refresh button does.
    client.post("/o/acme/sso/", {**form, "enforce_sso": "on"})
    assert idp.paths == ["/metadata", "/metadata"]
    idp.keys = make_keypair("Rolled-over IdP key")
    done = client.post("/o/acme/sso/refresh-metadata/", follow=True)
    assert b"read again from its URL" in done.content
    with org_a.scope():
        connection = SamlConnection.objects.get()
    assert connection.idp_x509cert == idp.keys.cert_body and connection.enforce_sso
    idp.served["/metadata"] = Served(status=500)
    failed = client.post("/o/acme/sso/refresh-metadata/", follow=True)
    assert b"HTTP 500" in failed.content


def test_sign_in_through_the_loopback_idp_never_fetches_its_metadata(
        org_a: OrgFixture, idp: LoopbackSamlIdp, loopback_allowed: None,
        browser: Client) -> None:
    verify_domain_directly(org_a, "acme.example")
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, metadata_url=idp.metadata_url)
        services.set_group_mapping(actor=SYSTEM, org=org_a.org, group="engineering",
                                   role="developer")
    start = browser.get("/accounts/saml/acme/login/")
    assert start.status_code == 302 and start["Location"].startswith(idp.sso_url)
    page = requests.get(start["Location"], timeout=5)
    [request] = idp.authn_requests
    assert request["acs_url"] == "http://station.test/accounts/saml/acme/acs/"
    saml_response = page.text.split('name="SAMLResponse" value="')[1].split('"')[0]
    acs = browser.post("/accounts/saml/acme/acs/", {"SAMLResponse": saml_response})
    finish = browser.get(acs["Location"])
    assert finish.status_code == 302 and finish["Location"] == "/o/acme/", finish.content
    assert "_auth_user_id" in browser.session
    assert idp.paths == ["/metadata", "/sso"]  # the save read it; the sign-in did not


def test_embedded_ipv4_is_judged_by_the_ipv4_host() -> None:
    import ipaddress

    for public in ("2001:4860:4860::8888", "8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"):
        assert fetch.is_public(ipaddress.ip_address(public)), public
    for private in ("64:ff9b::7f00:1", "2002:c0a8:101::1", "::169.254.169.254", "::1",
                    "fe80::1", "fc00::1"):
        assert not fetch.is_public(ipaddress.ip_address(private)), private


def test_a_server_dripping_its_body_is_cut_off_at_the_deadline(
        org_a: OrgFixture, loopback_allowed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """requests' timeout bounds each read, not the whole body: a byte every 0.2 s would hold
    a web thread for as long as the server likes without Station's own deadline."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Drip(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass  # Station hung up: the point of the test

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(fetch, "TIMEOUT_SECONDS", 1)
    try:
        began = time.monotonic()
        _refused(org_a, "took longer than 1 s",
                 metadata_url=f"http://127.0.0.1:{server.server_port}/metadata")
        assert time.monotonic() - began < 5
    finally:
        server.shutdown()
        server.server_close()
    with org_a.scope():
        assert not SamlConnection.objects.exists()
