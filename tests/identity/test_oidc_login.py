"""OIDC login through the org's provider (a loopback IdP signing with a key made here): a valid
login provisions just in time; every forged or stale ID token is refused with its reason in the
org's audit log; the client secret is write-only and never shown, logged or audited."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client

from audit.models import AuditEvent
from station.core.errors import InvalidInput
from station.identity import oidc, services
from station.identity.models import OidcConnection, SsoIdentity
from tenants.models import Membership, User
from tests.fixtures import SYSTEM, OrgFixture
from tests.identity.conftest import BASE, verify_domain_directly
from tests.identity.oidc_idp import CLIENT_ID, CLIENT_SECRET, LoopbackIdp, Tamper, new_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback_allowed(settings: Any) -> None:
    settings.OIDC_ALLOW_PRIVATE_NETWORKS = True  # the test IdP listens on 127.0.0.1


@pytest.fixture
def idp() -> Iterator[LoopbackIdp]:
    server = LoopbackIdp()
    yield server
    server.close()


@pytest.fixture
def oidc_org(org_a: OrgFixture, idp: LoopbackIdp) -> OrgFixture:
    verify_domain_directly(org_a, "acme.example")
    with org_a.scope():
        services.configure_oidc(actor=SYSTEM, org=org_a.org, issuer=idp.issuer,
                                client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                discover=True)
        services.set_group_mapping(actor=SYSTEM, org=org_a.org, group="engineering",
                                   role="developer")
        services.set_group_mapping(actor=SYSTEM, org=org_a.org, group="platform-admins",
                                   role="admin")
    return org_a


def start(browser: Client, slug: str = "acme") -> str:
    """The browser starts the login; returns the IdP authorize URL it was sent to."""
    response = browser.get(f"/accounts/oidc/{slug}/login/")
    assert response.status_code == 302, response.content
    return str(response["Location"])


def through_idp(authorize_url: str) -> str:
    """The IdP signs the person in and redirects back: the callback path + query."""
    response = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(f"{BASE}/accounts/oidc/")
    return location[len(BASE):]


def oidc_login(browser: Client, slug: str = "acme") -> Any:
    return browser.get(through_idp(start(browser, slug)))


def logged_in_as(client: Client) -> str | None:
    uid = client.session.get("_auth_user_id")
    return User.objects.get(pk=uid).email if uid else None


def failures(fx: OrgFixture) -> list[str]:
    with fx.scope():
        return [e.changes["reason"] for e in
                AuditEvent.objects.filter(action="identity.sso_login_failed")
                .order_by("sequence")]


def test_discovery_and_authorize_request(oidc_org: OrgFixture, idp: LoopbackIdp,
                                         browser: Client) -> None:
    with oidc_org.scope():
        connection = OidcConnection.objects.get()
    assert connection.token_endpoint == f"{idp.base}/token"
    assert connection.jwks_uri == f"{idp.base}/jwks"
    query = parse_qs(urlsplit(start(browser)).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [f"{BASE}/accounts/oidc/acme/login/callback/"]
    assert query["code_challenge_method"] == ["S256"]
    assert "openid" in query["scope"][0].split()
    assert len(query["nonce"][0]) >= 32 and len(query["state"][0]) >= 32


def test_valid_login_provisions_user_and_membership(oidc_org: OrgFixture, idp: LoopbackIdp,
                                                    browser: Client) -> None:
    response = oidc_login(browser)
    assert response.status_code == 302, response.content
    assert response["Location"] == "/o/acme/"
    assert logged_in_as(browser) == "alice@acme.example"
    user = User.objects.get(email="alice@acme.example")
    assert not user.has_usable_password()
    with oidc_org.scope():
        assert Membership.objects.get(user=user).role == "developer"
        identity = SsoIdentity.objects.get(user=user)
        assert (identity.idp_entity_id, identity.subject) == (idp.issuer, "00u-alice")
        assert AuditEvent.objects.filter(action="identity.sso_provisioned").count() == 1
        ok = AuditEvent.objects.get(action="identity.sso_login_succeeded")
    assert ok.changes["protocol"] == "oidc"
    # The client authenticated at the token endpoint with the unsealed secret (HTTP Basic).
    assert idp.token_requests[-1]["form"]["grant_type"] == "authorization_code"


def test_groups_map_to_roles_and_follow_the_idp(oidc_org: OrgFixture, idp: LoopbackIdp,
                                                browser: Client) -> None:
    idp.user["groups"] = ["engineering", "platform-admins"]
    oidc_login(browser)
    user = User.objects.get(email="alice@acme.example")
    with oidc_org.scope():
        assert Membership.objects.get(user=user).role == "admin"
    idp.user["groups"] = ["engineering"]
    oidc_login(Client(HTTP_HOST="station.test"))
    with oidc_org.scope():
        assert Membership.objects.get(user=user).role == "developer"
    # No mapped group and a blank default role: refused.
    with oidc_org.scope():
        services.configure_oidc(actor=SYSTEM, org=oidc_org.org, default_role="")
    idp.user["groups"] = ["marketing"]
    fresh = Client(HTTP_HOST="station.test")
    assert oidc_login(fresh).status_code == 403
    assert logged_in_as(fresh) is None
    assert failures(oidc_org)[-1] == "no_mapped_group"


@pytest.mark.parametrize(("tamper", "reason"), [
    (Tamper(claims={"aud": "someone-else"}), "wrong_audience"),
    (Tamper(claims={"aud": [CLIENT_ID, "other"]}), "wrong_audience"),  # no azp
    (Tamper(claims={"iss": "https://evil.example"}), "wrong_issuer"),
    (Tamper(claims={"nonce": "not-the-session-nonce"}), "wrong_nonce"),
    (Tamper(drop=["nonce"]), "wrong_nonce"),
    (Tamper(claims={"exp": 1_000_000_000, "iat": 999_999_000}), "expired"),
    (Tamper(claims={"iat": 4_000_000_000, "exp": 4_000_000_300}), "not_yet_valid"),
    (Tamper(alg="none"), "algorithm_not_allowed"),
    (Tamper(alg="HS256"), "algorithm_not_allowed"),
    (Tamper(key=new_key()), "bad_signature"),
    (Tamper(key=new_key(), kid="attacker-key"), "unknown_key"),
    (Tamper(drop=["sub"]), "invalid_id_token"),
], ids=["aud", "aud-list-no-azp", "iss", "nonce", "no-nonce", "expired", "future-iat",
        "alg-none", "alg-hs256", "other-key", "unknown-kid", "no-sub"])
def test_forged_or_stale_id_tokens_are_refused(oidc_org: OrgFixture, idp: LoopbackIdp,
                                               browser: Client, tamper: Tamper,
                                               reason: str) -> None:
    idp.tamper = tamper
    response = oidc_login(browser)
    assert response.status_code == 403
    assert logged_in_as(browser) is None
    assert failures(oidc_org) == [reason]
    assert not User.objects.filter(email="alice@acme.example").exists()


def test_expired_within_leeway_is_accepted_beyond_is_not(oidc_org: OrgFixture,
                                                         idp: LoopbackIdp) -> None:
    import time

    now = int(time.time())
    idp.tamper = Tamper(claims={"iat": now - 200, "exp": now - 30})
    assert oidc_login(Client(HTTP_HOST="station.test")).status_code == 302
    idp.tamper = Tamper(claims={"iat": now - 400, "exp": now - 120})
    assert oidc_login(Client(HTTP_HOST="station.test")).status_code == 403
    assert failures(oidc_org) == ["expired"]


def test_state_and_nonce_are_bound_to_the_browser_and_single_use(
        oidc_org: OrgFixture, idp: LoopbackIdp, browser: Client) -> None:
    callback = through_idp(start(browser))
    # Another browser (login CSRF / a stolen callback URL) cannot complete it.
    other = Client(HTTP_HOST="station.test")
    assert other.get(callback).status_code == 403
    assert logged_in_as(other) is None
    assert browser.get(callback).status_code == 302
    # The same callback again: the state was consumed.
    again = browser.get(callback)
    assert again.status_code == 403
    assert failures(oidc_org) == ["unknown_state", "unknown_state"]


def test_another_orgs_user_cannot_be_signed_in_by_subject_or_email(
        oidc_org: OrgFixture, org_b: OrgFixture, idp: LoopbackIdp, browser: Client) -> None:
    bob = org_b.add_member("bob@beta.example", "admin").user
    with org_b.scope():
        SsoIdentity.objects.create(organization=org_b.org, idp_entity_id=idp.issuer,
                                   subject="00u-bob", user=bob)
    # Same issuer and subject as org B's identity: org A's rows only, so a new acme user.
    idp.user.update({"sub": "00u-bob", "email": "bob2@acme.example"})
    assert oidc_login(browser).status_code == 302
    assert logged_in_as(browser) == "bob2@acme.example"
    # Bob's own email: not a domain acme verified.
    idp.user.update({"sub": "00u-x", "email": "bob@beta.example"})
    second = Client(HTTP_HOST="station.test")
    assert oidc_login(second).status_code == 403
    # An account in org B on acme's domain: never linked by email.
    org_b.add_member("carol@acme.example", "viewer")
    idp.user.update({"sub": "00u-carol", "email": "carol@acme.example"})
    third = Client(HTTP_HOST="station.test")
    assert oidc_login(third).status_code == 403
    assert logged_in_as(third) is None
    assert failures(oidc_org) == ["email_domain_not_verified",
                                  "account_in_another_organization"]


def test_unverified_email_is_not_used(oidc_org: OrgFixture, idp: LoopbackIdp,
                                      browser: Client) -> None:
    idp.user["email_verified"] = False
    assert oidc_login(browser).status_code == 403
    assert failures(oidc_org) == ["no_email"]


def test_email_routing_sends_the_user_to_the_orgs_oidc(oidc_org: OrgFixture,
                                                       browser: Client) -> None:
    response = browser.post("/accounts/sso/", {"email": "dana@acme.example"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/oidc/acme/login/"


def test_enforced_oidc_refuses_password_login(oidc_org: OrgFixture, browser: Client) -> None:
    user = oidc_org.add_member("eve@acme.example", "developer").user
    user.set_password("correct horse battery")
    user.save()
    with oidc_org.scope():
        services.configure_oidc(actor=SYSTEM, org=oidc_org.org, enforce_sso=True)
    response = browser.post("/accounts/login/", {"login": "eve@acme.example",
                                                 "password": "correct horse battery"})
    assert logged_in_as(browser) is None
    assert b"requires single sign-on" in response.content


def test_configuration_errors_change_nothing(org_a: OrgFixture, idp: LoopbackIdp,
                                             settings: Any) -> None:
    with org_a.scope(), pytest.raises(InvalidInput) as err:
        services.configure_oidc(actor=SYSTEM, org=org_a.org, issuer=idp.issuer,
                                client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    assert "authorization_endpoint" in err.value.errors
    with org_a.scope(), pytest.raises(InvalidInput) as err:
        services.configure_oidc(actor=SYSTEM, org=org_a.org, issuer=f"{idp.base}/nope",
                                client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                discover=True)
    assert "issuer" in err.value.errors
    with org_a.scope(), pytest.raises(InvalidInput) as err:
        services.configure_oidc(actor=SYSTEM, org=org_a.org, issuer=idp.issuer,
                                client_id=CLIENT_ID, discover=True)
    assert "client_secret" in err.value.errors
    # Without the opt-in, loopback and http:// are refused (SSRF guard).
    settings.OIDC_ALLOW_PRIVATE_NETWORKS = False
    with org_a.scope(), pytest.raises(InvalidInput) as err:
        services.configure_oidc(actor=SYSTEM, org=org_a.org, issuer=idp.issuer,
                                client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                discover=True)
    assert "issuer" in err.value.errors
    with pytest.raises(oidc.OidcError):
        oidc.check_destination("https://127.0.0.1/jwks")
    with org_a.scope():
        assert not OidcConnection.objects.exists()
        assert not AuditEvent.objects.filter(action="identity.oidc_configured").exists()


def test_client_secret_is_never_shown_logged_or_audited(
        oidc_org: OrgFixture, idp: LoopbackIdp, browser: Client,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = oidc_org.client("owner")
    body = client.get("/api/v1/sso/oidc")
    assert body.status_code == 200
    assert body.json()["client_secret_set"] is True
    assert body.json()["redirect_uri"] == f"{BASE}/accounts/oidc/acme/login/callback/"
    put = client.put("/api/v1/sso/oidc", {"client_secret": "rotated-" + CLIENT_SECRET,
                                          "groups_claim": "roles"}, format="json")
    assert put.status_code == 200, put.content
    client.put("/api/v1/sso/oidc", {"client_secret": CLIENT_SECRET}, format="json")
    oidc_login(browser)
    idp.tamper = Tamper(claims={"aud": "x"})
    oidc_login(Client(HTTP_HOST="station.test"))
    texts = [body.content.decode(), put.content.decode(), caplog.text]
    with oidc_org.scope():
        texts += [json.dumps(e.changes) + e.target_label for e in AuditEvent.objects.all()]
        row = OidcConnection.objects.get()
        assert CLIENT_SECRET.encode() not in bytes(row.secret_ciphertext)
    assert all(CLIENT_SECRET not in text for text in texts)
    # Only an admin reads or changes it.
    assert oidc_org.client("developer").get("/api/v1/sso/oidc").status_code == 403


def test_console_page_shows_redirect_uri_and_keeps_the_secret_write_only(
        login: Any, org_a: OrgFixture, idp: LoopbackIdp) -> None:
    client = login(org_a.owner)
    page = client.get("/o/acme/sso/oidc/")
    assert page.status_code == 200
    assert f"{BASE}/accounts/oidc/acme/login/callback/".encode() in page.content
    bad = client.post("/o/acme/sso/oidc/", {"issuer": "ftp://x", "client_id": CLIENT_ID,
                                            "client_secret": CLIENT_SECRET, "discover": "on"})
    assert bad.status_code == 200 and b"https://" in bad.content
    assert CLIENT_SECRET.encode() not in bad.content  # not even echoed back on error
    ok = client.post("/o/acme/sso/oidc/", {
        "issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "discover": "on", "scopes": "openid email", "groups_claim": "groups",
        "default_role": "viewer", "enabled": "on"})
    assert ok.status_code == 302, ok.content
    with org_a.scope():
        assert OidcConnection.objects.get().jwks_uri == f"{idp.base}/jwks"
    again = client.get("/o/acme/sso/oidc/")
    assert b"client secret set" in again.content
    assert CLIENT_SECRET.encode() not in again.content
    # Saving settings without retyping the secret keeps it.
    client.post("/o/acme/sso/oidc/", {"issuer": idp.issuer, "client_id": CLIENT_ID,
                                      "default_role": "viewer", "enabled": "on",
                                      "enforce_sso": "on"})
    with org_a.scope():
        row = OidcConnection.objects.get()
        assert row.enforce_sso and row.has_secret


def test_console_page_needs_org_manage(login: Any, org_a: OrgFixture) -> None:
    dev = org_a.add_member("dev@acme.example", "developer").user
    assert login(dev).get("/o/acme/sso/oidc/").status_code == 403


def test_secret_survives_data_key_rotation(oidc_org: OrgFixture, idp: LoopbackIdp,
                                           browser: Client) -> None:
    from station.identity import oidc_secret
    from station.vault import services as vault

    with oidc_org.scope():
        before = OidcConnection.objects.get().secret_data_key_id
        vault.rotate_data_key(actor=SYSTEM, org=oidc_org.org)
        row = OidcConnection.objects.get()
        assert row.secret_data_key_id != before
        assert oidc_secret.reveal(row) == CLIENT_SECRET
    assert oidc_login(browser).status_code == 302
