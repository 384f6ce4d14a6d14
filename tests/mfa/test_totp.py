"""TOTP and recovery codes through the console pages (allauth.mfa), with audit events."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from django.core.cache import cache

from tests.mfa.conftest import (
    audit_actions,
    browser,
    committed,
    enrol_totp,
    sign_in,
    totp_now,
)

pytestmark = pytest.mark.django_db


def test_enrol_then_sign_in_with_a_computed_code(org_a: Any, signed_in: Any) -> None:
    owner = org_a.owner
    client = signed_in(owner)
    secret = enrol_totp(client)
    assert Authenticator.objects.filter(user=owner, type="totp").exists()
    # Activation also made recovery codes, shown next.
    assert Authenticator.objects.filter(user=owner, type="recovery_codes").exists()

    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302

    fresh = browser()
    response = sign_in(fresh, owner.email)
    assert response["Location"] == "/accounts/2fa/authenticate/"
    # Password alone is not a session.
    assert fresh.get(f"/o/{org_a.org.slug}/environments/")["Location"].startswith(
        "/accounts/login/")
    cache.clear()  # the enrolment code was used in this 30 s window; allauth refuses reuse
    response = fresh.post("/accounts/2fa/authenticate/", {"code": totp_now(secret)})
    assert response.status_code == 302
    assert fresh.get(f"/o/{org_a.org.slug}/environments/").status_code == 200

    actions = audit_actions(org_a)
    assert ("account.mfa_enrolled", {"type": "totp"}) in actions
    assert ("account.mfa_enrolled", {"type": "recovery_codes"}) in actions
    assert ("account.logout", {}) in actions
    succeeded = [c for a, c in actions if a == "account.login_succeeded"]
    assert succeeded[-1]["methods"] == ["password", "mfa:totp"]


def test_wrong_code_is_refused_and_audited(org_a: Any, signed_in: Any) -> None:
    owner = org_a.owner
    secret = enrol_totp(signed_in(owner))
    fresh = browser()
    sign_in(fresh, owner.email)
    wrong = totp_now(secret, offset=5)  # a real code, but for another time window
    response = fresh.post("/accounts/2fa/authenticate/", {"code": wrong})
    assert response.status_code == 200
    assert b"Incorrect code" in response.content
    assert fresh.get(f"/o/{org_a.org.slug}/environments/").status_code == 302
    assert ("account.login_failed", {"reason": "incorrect_mfa_code", "stage": "login"}) \
        in audit_actions(org_a)


def test_recovery_code_signs_in_once(org_a: Any, signed_in: Any) -> None:
    owner = org_a.owner
    client = signed_in(owner)
    enrol_totp(client)
    page = client.get("/accounts/2fa/recovery-codes/")
    assert page.status_code == 200
    codes = page.context["unused_codes"]
    assert len(codes) == 10
    assert codes[0].encode() in page.content

    first = browser()
    sign_in(first, owner.email)
    assert first.post("/accounts/2fa/authenticate/", {"code": codes[0]}).status_code == 302
    assert first.get(f"/o/{org_a.org.slug}/environments/").status_code == 200

    again = browser()
    sign_in(again, owner.email)
    assert again.post("/accounts/2fa/authenticate/", {"code": codes[0]}).status_code == 200
    assert ("account.recovery_code_used", {"unused_codes_left": 9, "reauthentication": False}) \
        in audit_actions(org_a)


def test_regenerate_recovery_codes_is_audited(org_a: Any, signed_in: Any) -> None:
    client = signed_in(org_a.owner)
    enrol_totp(client)
    response = committed(client.post, "/accounts/2fa/recovery-codes/generate/")
    assert response.status_code == 302
    assert ("account.recovery_codes_regenerated", {"type": "recovery_codes"}) \
        in audit_actions(org_a)


def test_remove_totp(org_a: Any, signed_in: Any) -> None:
    owner = org_a.owner
    client = signed_in(owner)
    enrol_totp(client)
    page = client.get("/accounts/2fa/")
    assert page.status_code == 200
    response = client.post("/accounts/2fa/totp/deactivate/")
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=owner, type="totp").exists()
    assert ("account.mfa_removed", {"type": "totp"}) in audit_actions(org_a)
    # Without a second factor, the password alone signs in again.
    fresh = browser()
    assert sign_in(fresh, owner.email)["Location"] == "/"


def test_mfa_events_go_to_every_org_of_the_person(org_a: Any, make_org: Any,
                                                 signed_in: Any) -> None:
    other = make_org("initech", owner_email=org_a.owner.email)
    enrol_totp(signed_in(org_a.owner))
    for fx in (org_a, other):
        assert ("account.mfa_enrolled", {"type": "totp"}) in audit_actions(fx)


def test_mfa_pages_use_the_console_look(org_a: Any, signed_in: Any) -> None:
    client = signed_in(org_a.owner)
    for url in ("/accounts/2fa/", "/accounts/reauthenticate/", "/account/sessions/"):
        page = client.get(url)
        assert page.status_code == 200
        assert b"bare-card" in page.content, url
