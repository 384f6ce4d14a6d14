"""Members see and revoke their sessions; admins sign a member out everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from station.accounts.models import UserSession
from tests.mfa.conftest import UA, audit_actions

pytestmark = pytest.mark.django_db


def _ids(page: Any) -> list[str]:
    return [str(s.pk) for s in page.context["sessions"]]


def test_sign_in_records_browser_address_and_activity(org_a: Any, signed_in: Any) -> None:
    client = signed_in(org_a.owner, ip="198.51.100.4")
    row = UserSession.objects.get(user=org_a.owner)
    assert row.session_key == client.session.session_key
    assert row.ip == "198.51.100.4"
    assert row.user_agent == UA
    page = client.get("/account/sessions/")
    assert page.status_code == 200
    assert b"198.51.100.4" in page.content and b"this browser" in page.content
    assert b"Linux" in page.content
    # The page names sessions by id, never by the session key (the cookie).
    assert row.session_key.encode() not in page.content


def test_revoked_session_stops_working_on_its_next_request(org_a: Any, signed_in: Any) -> None:
    laptop = signed_in(org_a.owner, ip="198.51.100.4")
    phone = signed_in(org_a.owner, ip="198.51.100.9")
    url = f"/o/{org_a.org.slug}/environments/"
    assert phone.get(url).status_code == 200
    page = laptop.get("/account/sessions/")
    assert len(_ids(page)) == 2
    phone_row = UserSession.objects.get(session_key=phone.session.session_key)
    response = laptop.post(f"/account/sessions/{phone_row.pk}/revoke/")
    assert response.status_code == 302
    assert phone.get(url)["Location"].startswith("/accounts/login/")
    assert laptop.get(url).status_code == 200
    assert _ids(laptop.get("/account/sessions/")) == [
        str(UserSession.objects.get(session_key=laptop.session.session_key).pk)]
    revoked = [c for a, c in audit_actions(org_a) if a == "account.session_revoked"]
    assert revoked and revoked[0]["ip"] == "198.51.100.9"


def test_someone_elses_session_cannot_be_revoked(org_a: Any, member: Any,
                                                 signed_in: Any) -> None:
    victim = signed_in(member("dev@acme.example", "developer"))
    attacker = signed_in(org_a.owner)
    victim_row = UserSession.objects.get(session_key=victim.session.session_key)
    response = attacker.post(f"/account/sessions/{victim_row.pk}/revoke/", follow=True)
    assert b"No such session" in response.content
    assert victim.get(f"/o/{org_a.org.slug}/environments/").status_code == 200


def test_revoke_needs_post_and_login(org_a: Any, signed_in: Any, client: Any) -> None:
    owner = signed_in(org_a.owner)
    row = UserSession.objects.get(session_key=owner.session.session_key)
    assert owner.get(f"/account/sessions/{row.pk}/revoke/").status_code == 405
    assert client.post(f"/account/sessions/{row.pk}/revoke/")["Location"].startswith(
        "/accounts/login/")
    assert client.get("/account/sessions/")["Location"].startswith("/accounts/login/")


def test_signing_out_removes_the_session(org_a: Any, signed_in: Any) -> None:
    client = signed_in(org_a.owner)
    client.post("/accounts/logout/")
    assert not UserSession.objects.filter(user=org_a.owner).exists()
    assert ("account.logout", {}) in audit_actions(org_a)


def test_admin_signs_a_member_out_everywhere(org_a: Any, member: Any, signed_in: Any) -> None:
    dev_user = member("dev@acme.example", "developer")
    devices = [signed_in(dev_user, ip=f"198.51.100.{i}") for i in (1, 2)]
    admin = signed_in(org_a.owner)
    with org_a.scope():
        from tenants.models import Membership

        membership = Membership.objects.get(user=dev_user)
    url = f"/o/{org_a.org.slug}/members/{membership.pk}/sign-out/"
    assert b"Sign out everywhere" in admin.get(url).content
    response = admin.post(url, follow=True)
    assert b"signed out everywhere (2 sessions ended)" in response.content
    for device in devices:
        assert device.get(f"/o/{org_a.org.slug}/environments/").status_code == 302
    assert admin.get(f"/o/{org_a.org.slug}/environments/").status_code == 200
    assert ("account.signed_out_everywhere", {"sessions_ended": 2}) \
        in audit_actions(org_a, prefix="account.signed_out")


def test_members_without_members_manage_cannot(org_a: Any, member: Any,
                                               signed_in: Any) -> None:
    target = signed_in(org_a.owner)
    dev = signed_in(member("dev@acme.example", "developer"))
    with org_a.scope():
        from tenants.models import Membership

        owner_membership = Membership.objects.get(user=org_a.owner)
    url = f"/o/{org_a.org.slug}/members/{owner_membership.pk}/sign-out/"
    assert dev.post(url).status_code == 403
    assert target.get(f"/o/{org_a.org.slug}/environments/").status_code == 200


def test_untracked_sessions_are_ended_too(org_a: Any, member: Any, signed_in: Any) -> None:
    """A session from before tracking (no UserSession row) is found by the fallback scan."""
    from django.test import Client

    dev_user = member("dev@acme.example", "developer")
    old = Client()
    old.force_login(dev_user)
    UserSession.objects.filter(user=dev_user).delete()
    from station.accounts import sessions

    assert sessions.end_all_sessions(dev_user.pk) == 1
    assert old.get(f"/o/{org_a.org.slug}/environments/").status_code == 302


def test_revoking_this_browser_signs_it_out(org_a: Any, signed_in: Any) -> None:
    client = signed_in(org_a.owner)
    row = UserSession.objects.get(session_key=client.session.session_key)
    response = client.post(f"/account/sessions/{row.pk}/revoke/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert client.get(f"/o/{org_a.org.slug}/environments/").status_code == 302
    assert not UserSession.objects.filter(user=org_a.owner).exists()


def test_admin_signing_themselves_out_everywhere(org_a: Any, signed_in: Any) -> None:
    other_device = signed_in(org_a.owner)
    admin = signed_in(org_a.owner)
    with org_a.scope():
        from tenants.models import Membership

        own = Membership.objects.get(user=org_a.owner)
    response = admin.post(f"/o/{org_a.org.slug}/members/{own.pk}/sign-out/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    for device in (admin, other_device):
        assert device.get(f"/o/{org_a.org.slug}/environments/").status_code == 302


def test_a_revoked_browser_that_writes_its_session_is_still_out(
    org_a: Any, signed_in: Any
) -> None:
    """Even a request that changes session data cannot bring a revoked session back."""
    from station.accounts import sessions

    phone = signed_in(org_a.owner)
    sessions.end_all_sessions(org_a.owner.pk)
    response = phone.post("/accounts/login/", {"login": org_a.owner.email, "password": "x"})
    assert response.status_code == 200
    assert phone.get(f"/o/{org_a.org.slug}/environments/").status_code == 302
