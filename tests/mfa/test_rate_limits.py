"""Login and MFA attempts are limited per account and per IP (allauth's "login_failed":
5 per 5 minutes per account, 10 per minute per IP), with a clear message and an audit event."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mfa.conftest import audit_actions, browser, enrol_totp, sign_in, totp_now

pytestmark = pytest.mark.django_db

TOO_MANY = b"Too many failed sign-in attempts for this account or from your network"


def test_an_account_is_locked_after_five_failures_even_from_new_addresses(
    org_a: Any, with_password: Any
) -> None:
    owner = with_password(org_a.owner)
    for i in range(5):
        page = sign_in(browser(ip=f"198.51.100.{i}"), owner.email, "wrong password")
        assert page.status_code == 200 and TOO_MANY not in page.content
    # The right password, from yet another address: still refused, with the reason.
    client = browser(ip="198.51.100.99")
    page = sign_in(client, owner.email)
    assert page.status_code == 200
    assert TOO_MANY in page.content
    assert client.get(f"/o/{org_a.org.slug}/environments/").status_code == 302
    reasons = [c["reason"] for a, c in audit_actions(org_a) if a == "account.login_failed"]
    assert reasons == ["wrong_password"] * 5 + ["rate_limited"]


def test_an_address_is_limited_across_accounts(org_a: Any, member: Any,
                                               with_password: Any) -> None:
    victim = with_password(member("dev@acme.example", "developer"))
    client = browser(ip="192.0.2.50")
    for i in range(10):
        page = sign_in(client, f"guess{i}@acme.example", "wrong password")
        assert TOO_MANY not in page.content
    page = sign_in(client, victim.email)
    assert TOO_MANY in page.content
    # Another address is not affected.
    assert sign_in(browser(ip="192.0.2.51"), victim.email).status_code == 302


def test_mfa_codes_are_limited_per_account(org_a: Any, signed_in: Any) -> None:
    owner = org_a.owner
    secret = enrol_totp(signed_in(owner))
    for i in range(5):
        client = browser(ip=f"198.51.100.{i}")
        sign_in(client, owner.email)
        page = client.post("/accounts/2fa/authenticate/", {"code": totp_now(secret, offset=9)})
        assert b"Incorrect code" in page.content
    client = browser(ip="198.51.100.77")
    sign_in(client, owner.email)
    page = client.post("/accounts/2fa/authenticate/", {"code": totp_now(secret)})
    assert page.status_code == 200
    assert TOO_MANY in page.content
    assert client.get(f"/o/{org_a.org.slug}/environments/").status_code == 302
    failures = [c for a, c in audit_actions(org_a) if a == "account.login_failed"]
    assert failures[-1] == {"reason": "rate_limited", "stage": "mfa"}
    assert sum(1 for c in failures if c["reason"] == "incorrect_mfa_code") == 5


def test_failures_are_audited_in_every_org_and_unknown_emails_nowhere(
    org_a: Any, make_org: Any, with_password: Any
) -> None:
    other = make_org("initech", owner_email=org_a.owner.email)
    with_password(org_a.owner)
    sign_in(browser(), org_a.owner.email, "wrong password")
    sign_in(browser(), "nobody@acme.example", "wrong password")
    for fx in (org_a, other):
        assert audit_actions(fx) == [("account.login_failed", {"reason": "wrong_password"})]


def test_success_is_audited_with_the_address(org_a: Any, signed_in: Any) -> None:
    from audit.models import AuditEvent

    signed_in(org_a.owner, ip="198.51.100.23")
    with org_a.scope():
        event = AuditEvent.objects.get(action="account.login_succeeded")
    assert event.changes == {"methods": ["password"]}
    assert event.context["ip"] == "198.51.100.23"
    assert event.actor_label == org_a.owner.email
