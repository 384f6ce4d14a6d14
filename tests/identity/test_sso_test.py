"""The console's "test connection" for the org's SAML and OIDC IdP: the answer goes through
every check of a real sign-in, nobody is signed in or provisioned, the result (what the IdP
sent, what a sign-in would do, or why it was refused and how to fix it) is shown only to the
admin's session, and the test marker can be neither forged nor moved between flows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from station.identity import services
from station.identity.acs import SESSION_KEY
from station.identity.models import SsoIdentity
from tenants.models import Membership, User
from tests.fixtures import SYSTEM, OrgFixture
from tests.identity.conftest import HOST, IDP_SSO, SamlSetup
from tests.identity.oidc_idp import CLIENT_SECRET, LoopbackIdp, Tamper
from tests.identity.test_oidc_login import (  # noqa: F401 (fixtures)
    _loopback_allowed,
    idp,
    oidc_org,
    through_idp,
)

pytestmark = pytest.mark.django_db


def signed_in_client(user: User) -> Client:
    client = Client(HTTP_HOST=HOST)  # python3-saml checks the ACS URL against the Host
    client.force_login(user)
    return client


def session_user(client: Client) -> str | None:
    uid = client.session.get("_auth_user_id")
    return User.objects.get(pk=uid).email if uid else None


def start_test(client: Client, path: str = "/o/acme/sso/test/") -> str:
    """The admin presses Test connection; returns where the browser is sent (the IdP)."""
    response = client.post(path)
    assert response.status_code == 302, response.content
    return str(response["Location"])


def start_saml_test(client: Client) -> str:
    assert start_test(client).startswith(IDP_SSO)
    return list(client.session[SESSION_KEY])[-1]  # the AuthnRequest id the test waits on


def result_page(client: Client, finish: Any) -> Any:
    assert finish.status_code == 302, finish.content
    assert finish["Location"].startswith("/o/acme/sso/test/")
    page = client.get(finish["Location"])
    assert page.status_code == 200
    return page


def events(fx: OrgFixture, action: str) -> list[AuditEvent]:
    with fx.scope():
        return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


def assert_nothing_provisioned(fx: OrgFixture, email: str = "alice@acme.example") -> None:
    assert not User.objects.filter(email=email).exists()
    with fx.scope():
        assert not SsoIdentity.objects.exists()
    assert not events(fx, "identity.sso_login_succeeded")
    assert not events(fx, "identity.sso_provisioned")
    assert not events(fx, "identity.sso_login_failed")


# --- SAML -----------------------------------------------------------------------------------


def test_saml_test_shows_what_the_idp_sent_and_the_would_be_role(
    saml_setup: SamlSetup, org_a: OrgFixture
) -> None:
    admin = signed_in_client(org_a.owner)
    request_id = start_saml_test(admin)
    xml = saml_setup.signed_response(saml_setup.assertion(
        request_id, groups=["engineering", "marketing"]))
    page = result_page(admin, saml_setup.post(admin, xml))
    body = page.content.decode()
    assert 'data-ok="true"' in body
    for shown in ("00u-alice", "alice@acme.example", "engineering", "marketing",
                  "Create a new account alice@acme.example"):
        assert shown in body
    assert '<strong id="sso-test-role">developer</strong>' in body
    assert "from the group mapping" in body
    assert "verified by this organization" in body
    # A test: the admin is still the admin, and nobody was created, linked or signed in.
    assert session_user(admin) == org_a.owner.email
    assert_nothing_provisioned(org_a)
    [ok] = events(org_a, "identity.sso_test_succeeded")
    assert ok.actor_label == org_a.owner.email
    assert ok.changes["role"] == "developer" and ok.changes["account"] == "create"
    assert ok.changes["groups"] == ["engineering", "marketing"]
    assert ok.changes["would_refuse"] is None and ok.changes["protocol"] == "saml"


def test_saml_test_with_the_default_role_and_an_invited_member_to_link(
    saml_setup: SamlSetup, org_a: OrgFixture
) -> None:
    org_a.add_member("dave@acme.example", "operator")
    admin = signed_in_client(org_a.owner)
    request_id = start_saml_test(admin)
    xml = saml_setup.signed_response(saml_setup.assertion(
        request_id, name_id="00u-dave", email="dave@acme.example", groups=["unmapped"]))
    body = result_page(admin, saml_setup.post(admin, xml)).content.decode()
    assert "Link the existing account dave@acme.example" in body
    assert '<strong id="sso-test-role">viewer</strong>' in body
    assert "the default role" in body and "Role changed from operator to viewer" in body
    with org_a.scope():
        assert not SsoIdentity.objects.exists()
        assert Membership.objects.get(user__email="dave@acme.example").role == "operator"


def test_saml_test_reports_the_provisioning_refusal_a_sign_in_would_hit(
    saml_setup: SamlSetup, org_a: OrgFixture
) -> None:
    admin = signed_in_client(org_a.owner)
    request_id = start_saml_test(admin)
    xml = saml_setup.signed_response(saml_setup.assertion(
        request_id, name_id="00u-eve", email="eve@unverified.example"))
    body = result_page(admin, saml_setup.post(admin, xml)).content.decode()
    assert '<code id="sso-test-refusal">email_domain_not_verified</code>' in body
    assert "Verify unverified.example under Domains" in body
    assert "<strong>not verified</strong>" in body
    [ok] = events(org_a, "identity.sso_test_succeeded")
    assert ok.changes["would_refuse"] == "email_domain_not_verified"
    assert_nothing_provisioned(org_a, "eve@unverified.example")


def _failed_test(admin: Client, fx: OrgFixture, finish: Any, reason: str) -> str:
    body = str(result_page(admin, finish).content.decode())
    assert 'data-ok="false"' in body
    assert f'<code id="sso-test-reason">{reason}</code>' in body
    [failed] = events(fx, "identity.sso_test_failed")
    assert failed.changes["reason"] == reason and failed.changes["protocol"] == "saml"
    assert failed.actor_label == fx.owner.email
    assert not events(fx, "identity.sso_test_succeeded")
    assert session_user(admin) == fx.owner.email
    return body


def test_unsigned_assertion_fails_the_test_with_a_hint(saml_setup: SamlSetup,
                                                       org_a: OrgFixture) -> None:
    admin = signed_in_client(org_a.owner)
    a = saml_setup.assertion(start_saml_test(admin))
    body = _failed_test(admin, org_a, saml_setup.post(admin, a.response_xml(a.assertion_xml())),
                        "invalid_response")
    assert "Assertion not signed: turn on assertion signing" in body
    assert_nothing_provisioned(org_a)


def test_wrong_audience_fails_the_test_naming_the_sp_entity_id(saml_setup: SamlSetup,
                                                               org_a: OrgFixture) -> None:
    admin = signed_in_client(org_a.owner)
    xml = saml_setup.signed_response(saml_setup.assertion(
        start_saml_test(admin), audience="https://other-sp.example/metadata/"))
    body = _failed_test(admin, org_a, saml_setup.post(admin, xml), "invalid_response")
    assert ("Wrong audience: set the Audience URI (SP entity id) at the IdP to "
            "http://station.test/accounts/saml/acme/metadata/") in body
    [failed] = events(org_a, "identity.sso_test_failed")
    assert "audience" in failed.changes["detail"]


def test_sha1_signature_fails_the_test(saml_setup: SamlSetup, org_a: OrgFixture) -> None:
    admin = signed_in_client(org_a.owner)
    xml = saml_setup.signed_response(saml_setup.assertion(start_saml_test(admin)), sha1=True)
    body = _failed_test(admin, org_a, saml_setup.post(admin, xml), "invalid_response")
    assert "RSA-SHA256" in body


def test_a_replayed_assertion_fails_the_test(saml_setup: SamlSetup, org_a: OrgFixture) -> None:
    # A real sign-in uses an assertion; the IdP then answers the test with the same ID.
    user_browser = Client(HTTP_HOST=HOST)
    used = saml_setup.assertion(saml_setup.start(user_browser))
    assert saml_setup.post(user_browser, saml_setup.signed_response(used)).status_code == 302
    admin = signed_in_client(org_a.owner)
    again = saml_setup.assertion(start_saml_test(admin), assertion_id=used.assertion_id)
    body = _failed_test(admin, org_a, saml_setup.post(admin, saml_setup.signed_response(again)),
                        "replayed_assertion")
    assert "fresh assertion ID" in body


def test_an_unsolicited_answer_to_a_test_fails_it_even_when_idp_initiated_is_on(
    saml_setup: SamlSetup, org_a: OrgFixture
) -> None:
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, allow_idp_initiated=True)
    admin = signed_in_client(org_a.owner)
    start_saml_test(admin)
    xml = saml_setup.signed_response(saml_setup.assertion(None))
    _failed_test(admin, org_a, saml_setup.post(admin, xml), "unsolicited_response")
    assert_nothing_provisioned(org_a)


def test_a_test_response_can_never_sign_anyone_in(saml_setup: SamlSetup,
                                                  org_a: OrgFixture) -> None:
    admin = signed_in_client(org_a.owner)
    xml = saml_setup.signed_response(saml_setup.assertion(start_saml_test(admin)))
    result_page(admin, saml_setup.post(admin, xml))
    # The same response in a browser waiting on a sign-in of its own, in a fresh browser,
    # and once more in the admin's: refused each time, nobody signed in as alice.
    waiting = Client(HTTP_HOST=HOST)
    saml_setup.start(waiting)
    fresh = Client(HTTP_HOST=HOST)
    for browser in (waiting, fresh, admin):
        response = saml_setup.post(browser, xml)
        assert response.status_code == 403, response.content
    assert session_user(waiting) is None and session_user(fresh) is None
    assert session_user(admin) == org_a.owner.email
    reasons = [e.changes["reason"] for e in events(org_a, "identity.sso_login_failed")]
    assert reasons == ["invalid_response", "unknown_request", "unknown_request"]
    assert not User.objects.filter(email="alice@acme.example").exists()
    assert not events(org_a, "identity.sso_login_succeeded")


def test_a_sign_in_response_never_becomes_a_test(saml_setup: SamlSetup,
                                                 org_a: OrgFixture) -> None:
    user_browser = Client(HTTP_HOST=HOST)
    real = saml_setup.signed_response(saml_setup.assertion(saml_setup.start(user_browser)))
    # Posted into the admin's browser while it waits on a test: the test fails on InResponseTo.
    admin = signed_in_client(org_a.owner)
    start_saml_test(admin)
    _failed_test(admin, org_a, saml_setup.post(admin, real), "invalid_response")
    assert "InResponseTo" in events(org_a, "identity.sso_test_failed")[0].changes["detail"]
    # RelayState cannot make a sign-in a test either: the person is signed in as usual.
    response = saml_setup.post(user_browser, real, relay_state="test")
    assert response.status_code == 302 and response["Location"] == "/o/acme/"
    assert session_user(user_browser) == "alice@acme.example"
    assert len(events(org_a, "identity.sso_test_failed")) == 1
    assert not events(org_a, "identity.sso_test_succeeded")


def test_a_test_answered_after_the_tester_lost_org_manage_shows_nothing(
    saml_setup: SamlSetup, org_a: OrgFixture, member: Callable[[str, str], User]
) -> None:
    tester = member("second-admin@acme.example", "admin")
    admin = signed_in_client(tester)
    request_id = start_saml_test(admin)
    with org_a.scope():
        Membership.objects.filter(user=tester).update(role="developer")
    response = saml_setup.post(admin, saml_setup.signed_response(
        saml_setup.assertion(request_id)))
    assert response.status_code == 403
    [failed] = events(org_a, "identity.sso_test_failed")
    assert failed.changes["reason"] == "unknown_request"
    assert not admin.session.get("station_sso_tests")
    assert_nothing_provisioned(org_a)


def test_only_org_admins_start_tests_and_see_results(
    saml_setup: SamlSetup, org_a: OrgFixture, org_b: OrgFixture,
    member: Callable[[str, str], User]
) -> None:
    developer = signed_in_client(member("dev@acme.example", "developer"))
    assert developer.post("/o/acme/sso/test/").status_code == 403
    assert developer.post("/o/acme/sso/oidc/test/").status_code == 403
    assert SESSION_KEY not in developer.session
    outsider = signed_in_client(org_b.owner)
    assert outsider.post("/o/acme/sso/test/").status_code == 404
    # A GET starts nothing (the button is a CSRF-protected POST).
    admin = signed_in_client(org_a.owner)
    assert admin.get("/o/acme/sso/test/")["Location"] == "/o/acme/sso/"
    assert SESSION_KEY not in admin.session
    # The result belongs to the session that ran the test.
    xml = saml_setup.signed_response(saml_setup.assertion(start_saml_test(admin)))
    url = saml_setup.post(admin, xml)["Location"]
    assert admin.get(url).status_code == 200
    other_admin = signed_in_client(member("admin2@acme.example", "admin"))
    assert other_admin.get(url).status_code == 404
    same_user_other_session = signed_in_client(org_a.owner)
    assert same_user_other_session.get(url).status_code == 404
    assert developer.get(url).status_code == 403
    assert outsider.get(url.replace("/o/acme/", "/o/globex/")).status_code == 404


def test_a_connection_that_is_off_can_be_tested_and_still_signs_nobody_in(
        saml_setup: SamlSetup, org_a: OrgFixture) -> None:
    # The point of a test: try the IdP before turning sign-in on.
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, enabled=False,
                                allow_idp_initiated=True)
    admin = signed_in_client(org_a.owner)
    xml = saml_setup.signed_response(saml_setup.assertion(start_saml_test(admin)))
    body = result_page(admin, saml_setup.post(admin, xml)).content.decode()
    assert 'data-ok="true"' in body and "00u-alice" in body
    assert session_user(admin) == org_a.owner.email
    assert_nothing_provisioned(org_a)
    assert len(events(org_a, "identity.sso_test_succeeded")) == 1
    # Its SP metadata is served, so the IdP can be set up from it before SSO is on.
    assert Client(HTTP_HOST=HOST).get("/accounts/saml/acme/metadata/").status_code == 200
    # Yet nothing signs in through it: no sign-in starts, and a valid, signed response that
    # is not a test's answer (IdP-initiated, allowed by the org) is refused as such.
    browser = Client(HTTP_HOST=HOST)
    assert browser.get("/accounts/saml/acme/login/").status_code == 404
    unsolicited = saml_setup.signed_response(saml_setup.assertion(None))
    assert saml_setup.post(browser, unsolicited).status_code == 403
    assert session_user(browser) is None
    with org_a.scope():
        [refused] = AuditEvent.objects.filter(action="identity.sso_login_failed")
    assert refused.changes["reason"] == "connection_disabled"
    assert not User.objects.filter(email="alice@acme.example").exists()


def test_a_sign_in_answered_after_the_connection_was_turned_off_is_refused(
        saml_setup: SamlSetup, org_a: OrgFixture) -> None:
    browser = Client(HTTP_HOST=HOST)
    request_id = saml_setup.start(browser)  # started while SSO was on
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, enabled=False)
    xml = saml_setup.signed_response(saml_setup.assertion(request_id))
    assert saml_setup.post(browser, xml).status_code == 403
    assert session_user(browser) is None
    assert not User.objects.filter(email="alice@acme.example").exists()


# --- OIDC -----------------------------------------------------------------------------------


def oidc_test(admin: Client) -> Any:
    """The admin starts an OIDC test, signs in at the loopback IdP, and comes back."""
    return admin.get(through_idp(start_test(admin, "/o/acme/sso/oidc/test/")))


def test_oidc_test_shows_claims_and_would_be_role_and_signs_nobody_in(
    oidc_org: OrgFixture, idp: LoopbackIdp  # noqa: F811
) -> None:
    idp.user["groups"] = ["engineering", "platform-admins"]
    admin = signed_in_client(oidc_org.owner)
    body = result_page(admin, oidc_test(admin)).content.decode()
    assert 'data-ok="true"' in body and "ID token claims" in body
    assert "00u-alice" in body and "platform-admins" in body and "Alice Doe" in body
    assert '<strong id="sso-test-role">admin</strong>' in body
    assert "nonce" not in body
    assert session_user(admin) == oidc_org.owner.email
    assert_nothing_provisioned(oidc_org)
    [ok] = events(oidc_org, "identity.sso_test_succeeded")
    assert ok.changes["protocol"] == "oidc" and ok.changes["role"] == "admin"
    assert CLIENT_SECRET not in json.dumps(ok.changes)
    # The full flow ran: the code was exchanged at the token endpoint with PKCE.
    assert idp.token_requests[-1]["form"]["code_verifier"]


def test_oidc_test_with_a_wrong_nonce_fails_with_a_hint(
    oidc_org: OrgFixture, idp: LoopbackIdp  # noqa: F811
) -> None:
    idp.tamper = Tamper(claims={"nonce": "not-the-session-nonce"})
    admin = signed_in_client(oidc_org.owner)
    body = result_page(admin, oidc_test(admin)).content.decode()
    assert '<code id="sso-test-reason">wrong_nonce</code>' in body
    assert "copy the nonce of the authorization request" in body
    [failed] = events(oidc_org, "identity.sso_test_failed")
    assert failed.changes["reason"] == "wrong_nonce" and failed.changes["protocol"] == "oidc"
    assert CLIENT_SECRET not in json.dumps(failed.changes)
    assert_nothing_provisioned(oidc_org)


def test_oidc_wrong_audience_hint_names_the_client_id(
    oidc_org: OrgFixture, idp: LoopbackIdp  # noqa: F811
) -> None:
    idp.tamper = Tamper(claims={"aud": "someone-else"})
    admin = signed_in_client(oidc_org.owner)
    body = result_page(admin, oidc_test(admin)).content.decode()
    assert "wrong_audience" in body and "station-client" in body


def test_oidc_test_callback_cannot_sign_in_elsewhere(
    oidc_org: OrgFixture, idp: LoopbackIdp  # noqa: F811
) -> None:
    admin = signed_in_client(oidc_org.owner)
    callback = through_idp(start_test(admin, "/o/acme/sso/oidc/test/"))
    stranger = Client(HTTP_HOST=HOST)
    assert stranger.get(callback).status_code == 403
    assert session_user(stranger) is None
    # The state was not spent by the stranger: the admin still gets the test's result.
    result_page(admin, admin.get(callback))
    assert admin.get(callback).status_code == 403  # and only once
    assert not User.objects.filter(email="alice@acme.example").exists()
    assert [e.changes["reason"] for e in events(oidc_org, "identity.sso_login_failed")] == [
        "unknown_state", "unknown_state"]


# --- the dry run is the provisioning rules themselves ----------------------------------------


@pytest.mark.parametrize(("email", "groups", "invited", "expected"), [
    ("alice@acme.example", ["engineering"], None, ("create", "developer")),
    ("alice@acme.example", ["platform-admins", "engineering"], None, ("create", "admin")),
    ("dave@acme.example", ["unmapped"], "operator", ("link", "viewer")),
    ("owner@acme.example", [], "owner", ("link", "owner")),
    ("eve@elsewhere.example", ["engineering"], None, "email_domain_not_verified"),
    ("", ["engineering"], None, "no_email"),
])
def test_dry_run_predicts_what_sso_login_does(
    saml_setup: SamlSetup, org_a: OrgFixture, email: str, groups: list[str],
    invited: str | None, expected: Any
) -> None:
    from station.identity import sso_test
    from station.identity.provisioning import SsoAssertion, SsoRefused, sso_login

    if invited and invited != "owner":
        org_a.add_member(email, invited)
    connection = saml_setup.connection()
    assertion = SsoAssertion(idp_entity_id=connection.idp_entity_id, subject="00u-x",
                             email=email, groups=groups)
    with org_a.scope():
        plan = sso_test.dry_run(connection=connection, assertion=assertion)
        try:
            done = sso_login(connection=connection, assertion=assertion)
        except SsoRefused as exc:
            assert plan["refused"] == exc.reason == expected
            return
    assert plan["refused"] is None
    assert (plan["account"], plan["role"]) == expected
    assert done.role == plan["role"]
    assert done.user_created == (plan["account"] == "create")
    assert done.membership_created == (plan["membership"] == "create")
    # Once linked, the next dry run finds the identity and keeps the membership.
    with org_a.scope():
        again = sso_test.dry_run(connection=connection, assertion=assertion)
    assert (again["account"], again["membership"]) == ("existing", "keep")


def test_an_oidc_connection_that_is_off_can_be_tested_but_not_signed_in_through(
    oidc_org: OrgFixture, idp: LoopbackIdp  # noqa: F811
) -> None:
    browser = Client(HTTP_HOST=HOST)
    started = browser.get("/accounts/oidc/acme/login/")  # started while SSO was on
    assert started.status_code == 302
    with oidc_org.scope():
        services.configure_oidc(actor=SYSTEM, org=oidc_org.org, enabled=False)
    admin = signed_in_client(oidc_org.owner)
    body = result_page(admin, oidc_test(admin)).content.decode()
    assert 'data-ok="true"' in body and "00u-alice" in body
    assert_nothing_provisioned(oidc_org)
    # The sign-in started before SSO was turned off is refused when the IdP answers it.
    assert browser.get(through_idp(started["Location"])).status_code == 403
    assert session_user(browser) is None
    with oidc_org.scope():
        [refused] = AuditEvent.objects.filter(action="identity.sso_login_failed")
    assert refused.changes["reason"] == "connection_disabled"
    assert Client(HTTP_HOST=HOST).get("/accounts/oidc/acme/login/").status_code == 404
