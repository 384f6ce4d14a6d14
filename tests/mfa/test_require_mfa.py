"""An org that requires MFA sends members without it to enrol before any of its pages."""

from __future__ import annotations

from typing import Any

import pytest

from station.accounts import services
from station.core.errors import AccessDenied, InvalidInput
from tenants.authz import Principal
from tests.fixtures import SYSTEM
from tests.mfa.conftest import audit_actions, enrol_totp

pytestmark = pytest.mark.django_db


def _require(fx: Any) -> None:
    with fx.scope():
        fx.org.require_mfa = True
        fx.org.save(update_fields=["require_mfa"])


def test_member_without_mfa_is_sent_to_enrol_first(org_a: Any, member: Any,
                                                   signed_in: Any) -> None:
    _require(org_a)
    client = signed_in(member("dev@acme.example", "developer"))
    for page in ("environments/", "agents/", "members/", ""):
        response = client.get(f"/o/{org_a.org.slug}/{page}")
        assert response.status_code == 302, page
        assert response["Location"] == "/accounts/2fa/totp/activate/"
    followed = client.get(f"/o/{org_a.org.slug}/environments/", follow=True)
    assert b"Acme requires two-factor authentication" in followed.content


def test_after_enrolment_the_pages_open(org_a: Any, member: Any, signed_in: Any) -> None:
    _require(org_a)
    client = signed_in(member("dev@acme.example", "developer"))
    enrol_totp(client)
    assert client.get(f"/o/{org_a.org.slug}/environments/").status_code == 200


def test_other_orgs_of_the_same_person_are_not_affected(org_a: Any, make_org: Any,
                                                        signed_in: Any) -> None:
    other = make_org("initech", owner_email=org_a.owner.email)
    _require(org_a)
    client = signed_in(org_a.owner)
    assert client.get(f"/o/{other.org.slug}/environments/").status_code == 200
    assert client.get(f"/o/{org_a.org.slug}/environments/").status_code == 302


def test_api_keys_are_not_affected(org_a: Any) -> None:
    _require(org_a)
    assert org_a.client("owner").get("/api/v1/environments").status_code == 200


def test_session_from_the_orgs_own_sso_is_left_to_the_idp(org_a: Any, member: Any,
                                                         signed_in: Any) -> None:
    _require(org_a)
    client = signed_in(member("dev@acme.example", "developer"))
    session = client.session
    session["station_sso_org"] = str(org_a.org.pk)
    session.save()
    assert client.get(f"/o/{org_a.org.slug}/environments/").status_code == 200


def test_only_org_manage_sets_it(org_a: Any, member: Any) -> None:
    viewer = member("viewer@acme.example", "viewer")
    with org_a.scope(), pytest.raises(AccessDenied):
        services.set_require_mfa(actor=Principal.for_user(viewer), org=org_a.org, required=True)


def test_an_admin_without_mfa_cannot_lock_themselves_out(org_a: Any) -> None:
    with org_a.scope(), pytest.raises(InvalidInput) as exc:
        services.set_require_mfa(actor=Principal.for_user(org_a.owner), org=org_a.org,
                                 required=True)
    assert "require_mfa" in (exc.value.errors or {})
    with org_a.scope():
        org_a.org.refresh_from_db()
    assert org_a.org.require_mfa is False


def test_setting_it_is_audited_as_an_org_update(org_a: Any) -> None:
    with org_a.scope():
        services.set_require_mfa(actor=SYSTEM, org=org_a.org, required=True)
        services.set_require_mfa(actor=SYSTEM, org=org_a.org, required=True)  # no change
    updates = audit_actions(org_a, prefix="organization.updated")
    assert updates == [("organization.updated",
                        {"require_mfa": {"from": False, "to": True}})]


def test_security_page_toggles_it(org_a: Any, signed_in: Any) -> None:
    client = signed_in(org_a.owner)
    page = client.get(f"/o/{org_a.org.slug}/security/")
    assert page.status_code == 200
    assert org_a.owner.email.encode() in page.content  # listed as without MFA
    refused = client.post(f"/o/{org_a.org.slug}/security/", {"require_mfa": "on"})
    assert refused.status_code == 200
    assert b"for your own account first" in refused.content
    enrol_totp(client)
    done = client.post(f"/o/{org_a.org.slug}/security/", {"require_mfa": "on"})
    assert done.status_code == 302
    with org_a.scope():
        org_a.org.refresh_from_db()
    assert org_a.org.require_mfa is True
    assert client.get(f"/o/{org_a.org.slug}/security/").status_code == 200


def test_security_page_is_in_the_nav_for_org_managers_only(org_a: Any, member: Any,
                                                          signed_in: Any) -> None:
    owner_page = signed_in(org_a.owner).get(f"/o/{org_a.org.slug}/environments/")
    assert f"/o/{org_a.org.slug}/security/".encode() in owner_page.content
    dev = signed_in(member("dev@acme.example", "developer"))
    dev_page = dev.get(f"/o/{org_a.org.slug}/environments/")
    assert f"/o/{org_a.org.slug}/security/".encode() not in dev_page.content
    assert b"/account/sessions/" in dev_page.content
