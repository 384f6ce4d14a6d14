"""SSO enforcement at password login (owners' audited break-glass), and sign-in routing from
an email's verified domain to its org's IdP."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from station.identity import services
from tests.fixtures import SYSTEM, OrgFixture
from tests.identity.conftest import HOST

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def _with_password(user: Any) -> Any:
    user.set_password(PASSWORD)
    user.save()
    return user


def _login(email: str, password: str = PASSWORD, path: str = "/accounts/login/",
           **extra: str) -> tuple[Client, Any]:
    client = Client(HTTP_HOST=HOST)
    response = client.post(path, {"login": email, "password": password, **extra})
    return client, response


def _enforce(saml_setup: Any) -> None:
    with saml_setup.fx.scope():
        services.configure_saml(actor=SYSTEM, org=saml_setup.fx.org, enforce_sso=True)


def test_member_of_an_enforcing_org_cannot_use_a_password(saml_setup: Any, member: Any) -> None:
    user = _with_password(member("dev@acme.example", "developer"))
    _, before = _login(user.email)
    assert before.status_code == 302  # not enforced yet
    _enforce(saml_setup)
    client, response = _login(user.email)
    assert response.status_code == 200
    assert b"requires single sign-on" in response.content
    assert b"/accounts/sso/" in response.content
    assert "_auth_user_id" not in client.session
    # The refusal is in the enforcing org's audit log, with its reason.
    from audit.models import AuditEvent

    with saml_setup.fx.scope():
        refused = AuditEvent.objects.filter(action="account.login_failed",
                                            actor_id=str(user.pk)).get()
    assert refused.changes["reason"] == "sso_required"


def test_wrong_password_says_nothing_about_sso(saml_setup: Any, member: Any) -> None:
    user = _with_password(member("dev@acme.example", "developer"))
    _enforce(saml_setup)
    _, response = _login(user.email, "wrong password here")
    assert b"requires single sign-on" not in response.content


def test_owner_needs_the_break_glass_page_which_is_audited(saml_setup: Any,
                                                            events: Any) -> None:
    owner = _with_password(saml_setup.fx.owner)
    _enforce(saml_setup)
    _, refused = _login(owner.email)
    assert b"requires single sign-on" in refused.content
    client, ok = _login(owner.email, path="/accounts/login/break-glass/",
                        reason="IdP outage, ticket 42")
    assert ok.status_code == 302, ok.content
    assert client.session["_auth_user_id"] == str(owner.pk)
    [event] = events("identity.break_glass_login")
    assert event.actor_label == owner.email
    assert event.changes == {"reason": "IdP outage, ticket 42"}


def test_break_glass_is_for_owners_only(saml_setup: Any, member: Any, events: Any) -> None:
    admin = _with_password(member("admin@acme.example", "admin"))
    _enforce(saml_setup)
    client, response = _login(admin.email, path="/accounts/login/break-glass/", reason="x")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert not events("identity.break_glass_login")


def test_member_of_other_orgs_is_unaffected(saml_setup: Any, org_b: OrgFixture) -> None:
    _enforce(saml_setup)
    _, response = _login(_with_password(org_b.owner).email)
    assert response.status_code == 302


def test_email_on_a_verified_domain_goes_to_its_orgs_idp(saml_setup: Any) -> None:
    client = Client(HTTP_HOST=HOST)
    response = client.post("/accounts/sso/", {"email": "Alice@ACME.example",
                                              "next": "/o/acme/runs/"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/saml/acme/login/?next=%2Fo%2Facme%2Fruns%2F"
    idp = client.get(response["Location"])
    assert idp["Location"].startswith("https://idp.acme.example/sso?SAMLRequest=")


@pytest.mark.parametrize("email", ["bob@unknown.example", "owner@globex.example"])
def test_email_without_sso_gets_a_clear_message(saml_setup: Any, org_b: OrgFixture,
                                                email: str) -> None:
    from tests.identity.conftest import verify_domain_directly

    verify_domain_directly(org_b, "globex.example")  # verified, but Globex has no IdP
    response = Client(HTTP_HOST=HOST).post("/accounts/sso/", {"email": email})
    assert response.status_code == 200
    assert b"No organization uses single sign-on for this email domain" in response.content


def test_login_page_links_to_sso(db: Any) -> None:
    page = Client(HTTP_HOST=HOST).get("/accounts/login/")
    assert b"/accounts/sso/" in page.content
