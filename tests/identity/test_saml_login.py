"""SAML login through the org's IdP: a valid response signs the person in (JIT), and every
adversarial variation is refused with its reason in the org's audit log."""

from __future__ import annotations

from typing import Any

import pytest

from station.identity.models import SsoIdentity
from tenants.models import Membership, User
from tests.identity.idp import sign

pytestmark = pytest.mark.django_db


def _logged_in_as(client: Any) -> str | None:
    from django.contrib.auth import get_user_model

    uid = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=uid).email if uid else None


def test_valid_login_provisions_user_and_membership(saml_setup: Any, browser: Any,
                                                    events: Any) -> None:
    response = saml_setup.login(browser)
    assert response.status_code == 302, response.content
    assert response["Location"] == "/o/acme/"
    assert _logged_in_as(browser) == "alice@acme.example"
    user = User.objects.get(email="alice@acme.example")
    assert not user.has_usable_password()
    with saml_setup.fx.scope():
        assert Membership.objects.get(user=user).role == "developer"
        identity = SsoIdentity.objects.get(user=user)
        assert (identity.idp_entity_id, identity.subject) == (
            "https://idp.acme.example/saml", "00u-alice")
    [provisioned] = events("identity.sso_provisioned")
    assert provisioned.changes["user_created"] is True
    [ok] = events("identity.sso_login_succeeded")
    assert ok.actor_label == "alice@acme.example"


def _refused(response: Any, events: Any, reason: str, detail: str = "") -> None:
    assert response.status_code in {400, 403}, response.content
    failed = events("identity.sso_login_failed")
    assert failed, "a refused login must be audited"
    assert failed[-1].changes["reason"] == reason, failed[-1].changes
    if detail:
        assert detail.lower() in failed[-1].changes["detail"].lower(), failed[-1].changes
    assert not events("identity.sso_login_succeeded")


def _anonymous(client: Any) -> bool:
    return "_auth_user_id" not in client.session


def test_replayed_response_is_refused(saml_setup: Any, browser: Any, events: Any) -> None:
    request_id = saml_setup.start(browser)
    xml = saml_setup.signed_response(saml_setup.assertion(request_id))
    assert saml_setup.post(browser, xml).status_code == 302
    # Same response again, from a fresh browser that even has a pending request of its own.
    from django.test import Client

    other = Client(HTTP_HOST="station.test")
    saml_setup.start(other)
    response = saml_setup.post(other, xml)
    assert _anonymous(other)
    assert response.status_code == 403
    [failed] = events("identity.sso_login_failed")
    assert failed.changes["reason"] == "invalid_response"
    assert "InResponseTo" in failed.changes["detail"]
    # Replayed into the browser that used it: its request is answered already.
    response = saml_setup.post(browser, xml)
    assert response.status_code == 403
    assert events("identity.sso_login_failed")[-1].changes["reason"] == "unknown_request"


def test_replay_cache_refuses_a_seen_assertion_id_from_the_same_idp(
    saml_setup: Any, browser: Any, events: Any
) -> None:
    # IdP-initiated (no InResponseTo binding), so only the replay cache can stop it.
    with saml_setup.fx.scope():
        from station.identity import services
        from tests.fixtures import SYSTEM

        services.configure_saml(actor=SYSTEM, org=saml_setup.fx.org, allow_idp_initiated=True)
    xml = saml_setup.signed_response(saml_setup.assertion(None))
    assert saml_setup.post(browser, xml).status_code == 302
    from django.test import Client

    other = Client(HTTP_HOST="station.test")
    response = saml_setup.post(other, xml)
    assert _anonymous(other)
    _refused_reason = events("identity.sso_login_failed")[-1].changes["reason"]
    assert response.status_code == 403 and _refused_reason == "replayed_assertion"


def test_authn_request_id_is_single_use_across_sessions(
    saml_setup: Any, browser: Any, events: Any
) -> None:
    # A copied session cookie (or a second process) still cannot answer one request twice.
    request_id = saml_setup.start(browser)
    first = saml_setup.signed_response(saml_setup.assertion(request_id))
    session_cookie = browser.cookies["sessionid"].value
    assert saml_setup.post(browser, first).status_code == 302
    from django.test import Client

    clone = Client(HTTP_HOST="station.test")
    clone.cookies["sessionid"] = session_cookie  # the pre-login session, still pending
    second = saml_setup.signed_response(saml_setup.assertion(request_id))  # new assertion id
    response = saml_setup.post(clone, second)
    assert response.status_code == 403
    reasons = {e.changes["reason"] for e in events("identity.sso_login_failed")}
    assert reasons & {"request_reused_or_expired", "unknown_request"}


def test_unsolicited_response_is_refused_unless_the_org_opts_in(
    saml_setup: Any, browser: Any, events: Any
) -> None:
    xml = saml_setup.signed_response(saml_setup.assertion(None))
    response = saml_setup.post(browser, xml)
    _refused(response, events, "unsolicited_response")
    assert _anonymous(browser)


def test_idp_initiated_login_when_allowed_keeps_relay_state_same_origin(
    saml_setup: Any, browser: Any
) -> None:
    from station.identity import services
    from tests.fixtures import SYSTEM

    with saml_setup.fx.scope():
        services.configure_saml(actor=SYSTEM, org=saml_setup.fx.org, allow_idp_initiated=True)
    xml = saml_setup.signed_response(saml_setup.assertion(None))
    from django.test import Client

    response = saml_setup.post(browser, xml, relay_state="https://evil.example/phish")
    assert response.status_code == 302 and response["Location"] == "/o/acme/"
    for bad in ("//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        fresh = Client(HTTP_HOST="station.test")
        xml = saml_setup.signed_response(saml_setup.assertion(None))
        assert saml_setup.post(fresh, xml, relay_state=bad)["Location"] == "/o/acme/"
    fresh = Client(HTTP_HOST="station.test")
    xml = saml_setup.signed_response(saml_setup.assertion(None))
    assert saml_setup.post(fresh, xml, relay_state="/o/acme/runs/")["Location"] == "/o/acme/runs/"


def test_next_after_sp_initiated_login_is_a_same_origin_path_only(
    saml_setup: Any, browser: Any
) -> None:
    request_id = saml_setup.start(browser, next_url="https://evil.example/")
    response = saml_setup.post(browser, saml_setup.signed_response(
        saml_setup.assertion(request_id)))
    assert response["Location"] == "/o/acme/"
    from django.test import Client

    other = Client(HTTP_HOST="station.test")
    request_id = saml_setup.start(other, next_url="/o/acme/agents/")
    response = saml_setup.post(other, saml_setup.signed_response(
        saml_setup.assertion(request_id)))
    assert response["Location"] == "/o/acme/agents/"


def test_wrong_in_response_to_is_refused(saml_setup: Any, browser: Any, events: Any) -> None:
    saml_setup.start(browser)
    xml = saml_setup.signed_response(saml_setup.assertion("_someone-elses-request"))
    _refused(saml_setup.post(browser, xml), events, "invalid_response", "InResponseTo")
    assert _anonymous(browser)


def test_signature_wrapping_with_an_injected_unsigned_assertion_is_refused(
    saml_setup: Any, browser: Any, events: Any
) -> None:
    request_id = saml_setup.start(browser)
    genuine = saml_setup.assertion(request_id, name_id="00u-mallory",
                                   email="mallory@acme.example")
    evil = saml_setup.assertion(request_id, name_id="00u-owner", email="owner@acme.example",
                                groups=["platform-admins"])
    signed = sign(genuine.assertion_xml(), saml_setup.keys)
    for assertions in (evil.assertion_xml() + signed, signed + evil.assertion_xml()):
        from django.test import Client

        client = Client(HTTP_HOST="station.test")
        rid = saml_setup.start(client)
        xml = genuine.response_xml(assertions).replace(request_id, rid)
        response = saml_setup.post(client, xml)
        assert response.status_code == 403
        assert _anonymous(client)
    # The signed one moved inside the evil one's Subject (classic XSW) is refused too.
    client = Client(HTTP_HOST="station.test")
    rid = saml_setup.start(client)
    wrapped = evil.assertion_xml().replace(
        "</saml:Subject>", f"</saml:Subject><saml:Advice>{signed}</saml:Advice>")
    response = saml_setup.post(client, genuine.response_xml(wrapped).replace(request_id, rid))
    assert response.status_code == 403 and _anonymous(client)
    assert not events("identity.sso_login_succeeded")
    assert not User.objects.filter(email="mallory@acme.example").exists()
    assert all(e.changes["reason"] == "invalid_response"
               for e in events("identity.sso_login_failed"))


def test_name_id_edited_after_signing_is_refused(saml_setup: Any, browser: Any,
                                                 events: Any) -> None:
    request_id = saml_setup.start(browser)
    xml = saml_setup.signed_response(saml_setup.assertion(request_id))
    tampered = xml.replace(">00u-alice<", ">00u-bob<")
    assert tampered != xml
    _refused(saml_setup.post(browser, tampered), events, "invalid_response")
    assert _anonymous(browser)


@pytest.mark.parametrize(("field", "value", "hint"), [
    ("audience", "https://other-sp.example/metadata/", "audience"),
    ("recipient", "https://station.test/accounts/saml/globex/acs/",
     "SubjectConfirmation"),
    ("destination", "https://elsewhere.example/acs/", "received at"),
    ("issuer", "https://evil-idp.example/saml", "issuer"),
])
def test_wrong_audience_recipient_destination_or_issuer_is_refused(
    saml_setup: Any, browser: Any, events: Any, field: str, value: str, hint: str
) -> None:
    request_id = saml_setup.start(browser)
    xml = saml_setup.signed_response(saml_setup.assertion(request_id, **{field: value}))
    _refused(saml_setup.post(browser, xml), events, "invalid_response", hint)
    assert _anonymous(browser)


def test_expired_and_not_yet_valid_assertions_are_refused(
    saml_setup: Any, browser: Any, events: Any
) -> None:
    from datetime import timedelta

    from django.test import Client
    from django.utils import timezone

    now = timezone.now()
    cases = [
        dict(not_before=now - timedelta(hours=2), not_on_or_after=now - timedelta(hours=1)),
        dict(not_before=now + timedelta(hours=1), not_on_or_after=now + timedelta(hours=2)),
    ]
    for case in cases:
        client = Client(HTTP_HOST="station.test")
        rid = saml_setup.start(client)
        response = saml_setup.post(client, saml_setup.signed_response(
            saml_setup.assertion(rid, **case)))
        assert response.status_code == 403 and _anonymous(client)
    failed = events("identity.sso_login_failed")
    assert [e.changes["reason"] for e in failed] == ["invalid_response"] * 2


def test_unsigned_assertion_is_refused(saml_setup: Any, browser: Any, events: Any) -> None:
    request_id = saml_setup.start(browser)
    a = saml_setup.assertion(request_id)
    _refused(saml_setup.post(browser, a.response_xml(a.assertion_xml())), events,
             "invalid_response", "signed")
    assert _anonymous(browser)


def test_assertion_signed_by_another_key_is_refused(
    saml_setup: Any, browser: Any, events: Any, other_keys: Any
) -> None:
    request_id = saml_setup.start(browser)
    xml = saml_setup.signed_response(saml_setup.assertion(request_id), keys=other_keys)
    _refused(saml_setup.post(browser, xml), events, "invalid_response")
    assert _anonymous(browser)


def test_sha1_signature_is_refused(saml_setup: Any, browser: Any, events: Any) -> None:
    request_id = saml_setup.start(browser)
    xml = saml_setup.signed_response(saml_setup.assertion(request_id), sha1=True)
    _refused(saml_setup.post(browser, xml), events, "invalid_response", "deprecated")
    assert _anonymous(browser)


def test_name_id_of_another_orgs_user_cannot_sign_them_in(
    saml_setup: Any, browser: Any, events: Any, org_b: Any
) -> None:
    # Globex's owner exists; Acme's IdP asserts their email (and even their NameID shape).
    victim = org_b.owner
    response = saml_setup.login(browser, name_id=victim.email, email=victim.email)
    _refused(response, events, "email_domain_not_verified")
    assert _anonymous(browser)


def test_acme_domain_email_of_a_user_in_another_org_is_not_linked(
    saml_setup: Any, browser: Any, events: Any, org_b: Any
) -> None:
    # Someone with an @acme.example address who belongs to Globex: email alone never links.
    org_b.add_member("carol@acme.example", "owner")
    response = saml_setup.login(browser, name_id="00u-carol", email="carol@acme.example")
    _refused(response, events, "account_in_another_organization")
    assert _anonymous(browser)
    with saml_setup.fx.scope():
        assert not SsoIdentity.objects.exists()


def test_existing_identity_is_found_by_subject_not_email(
    saml_setup: Any, browser: Any, events: Any
) -> None:
    assert saml_setup.login(browser).status_code == 302
    from django.test import Client

    # Same subject, new email at the IdP: still the same account.
    other = Client(HTTP_HOST="station.test")
    assert saml_setup.login(other, email="alice.smith@acme.example").status_code == 302
    assert _logged_in_as(other) == "alice@acme.example"
    # Another subject asserting alice's email does not become alice.
    third = Client(HTTP_HOST="station.test")
    response = saml_setup.login(third, name_id="00u-impostor", email="alice@acme.example")
    assert response.status_code == 403 and _anonymous(third)
    assert events("identity.sso_login_failed")[-1].changes["reason"] == \
        "email_linked_to_another_subject"


def test_member_invited_before_sso_is_linked_on_first_login(
    saml_setup: Any, browser: Any, events: Any
) -> None:
    membership = saml_setup.fx.add_member("dave@acme.example", "operator")
    response = saml_setup.login(browser, name_id="00u-dave", email="dave@acme.example",
                                groups=["engineering"])
    assert response.status_code == 302
    assert _logged_in_as(browser) == "dave@acme.example"
    with saml_setup.fx.scope():
        assert SsoIdentity.objects.get(subject="00u-dave").user_id == membership.user_id
        assert Membership.objects.get(pk=membership.pk).role == "developer"
    [changed] = events("member.role_changed")
    assert changed.actor_label == "SAML IdP https://idp.acme.example/saml"


def test_role_follows_idp_groups_at_each_login(saml_setup: Any, browser: Any) -> None:
    from django.test import Client

    assert saml_setup.login(browser, groups=["engineering"]).status_code == 302
    user = User.objects.get(email="alice@acme.example")
    with saml_setup.fx.scope():
        assert Membership.objects.get(user=user).role == "developer"
    again = Client(HTTP_HOST="station.test")
    assert saml_setup.login(again, groups=["engineering", "platform-admins"]).status_code == 302
    with saml_setup.fx.scope():
        assert Membership.objects.get(user=user).role == "admin"
    third = Client(HTTP_HOST="station.test")
    assert saml_setup.login(third, groups=["unmapped"]).status_code == 302
    with saml_setup.fx.scope():
        assert Membership.objects.get(user=user).role == "viewer"  # the default role


def test_no_mapped_group_and_no_default_role_is_refused(
    saml_setup: Any, browser: Any, events: Any
) -> None:
    from station.identity import services
    from tests.fixtures import SYSTEM

    with saml_setup.fx.scope():
        services.configure_saml(actor=SYSTEM, org=saml_setup.fx.org, default_role="")
    _refused(saml_setup.login(browser, groups=["unmapped"]), events, "no_mapped_group")


def test_idp_never_demotes_an_owner(saml_setup: Any, browser: Any) -> None:
    owner = saml_setup.fx.owner
    with saml_setup.fx.scope():
        SsoIdentity.objects.create(organization=saml_setup.fx.org,
                                   idp_entity_id="https://idp.acme.example/saml",
                                   subject="00u-owner", user=owner)
    assert saml_setup.login(browser, name_id="00u-owner", groups=[]).status_code == 302
    with saml_setup.fx.scope():
        assert Membership.objects.get(user=owner).role == "owner"


def test_disabled_connection_and_unknown_org_have_no_sso(saml_setup: Any, browser: Any) -> None:
    from station.identity import services
    from tests.fixtures import SYSTEM

    assert browser.get("/accounts/saml/no-such-org/login/").status_code == 404
    with saml_setup.fx.scope():
        services.configure_saml(actor=SYSTEM, org=saml_setup.fx.org, enabled=False)
    assert browser.get("/accounts/saml/acme/login/").status_code == 404


def test_sp_metadata_names_the_acs_and_entity_id(saml_setup: Any, browser: Any) -> None:
    response = browser.get("/accounts/saml/acme/metadata/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'entityID="http://station.test/accounts/saml/acme/metadata/"' in body
    assert "http://station.test/accounts/saml/acme/acs/" in body


def test_station_views_shadow_allauths_finish_and_login() -> None:
    from django.urls import resolve

    from station.identity import acs

    assert resolve("/accounts/saml/acme/acs/finish/").func is acs.saml_finish
    assert resolve("/accounts/saml/acme/login/").func is acs.saml_login
