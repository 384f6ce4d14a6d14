"""The org's MFA requirement through the REST API (`/api/v1/organization`): read with the
org, set with `org.manage` through the console's service, audited the same way, and in force
for the console right away."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from tenants.models import Organization
from tests.fixtures import OrgFixture
from tests.mfa.conftest import audit_actions

pytestmark = pytest.mark.django_db


def _required(fx: OrgFixture) -> bool:
    with fx.scope():
        return Organization.objects.get(pk=fx.org.pk).require_mfa


def test_the_policy_is_readable_with_the_organization(org_a: OrgFixture) -> None:
    body = org_a.client("viewer").get("/api/v1/organization").json()
    assert body["require_mfa"] is False


def test_an_org_manager_requires_mfa_and_the_change_is_audited(org_a: OrgFixture) -> None:
    plaintext = org_a.key("owner")
    key = org_a.key_object(plaintext)
    response = org_a.client_for(plaintext).patch("/api/v1/organization",
                                                 {"require_mfa": True})
    assert response.status_code == 200, response.content
    assert response.json()["require_mfa"] is True
    assert response.json()["name"] == org_a.org.name
    assert _required(org_a) is True
    assert audit_actions(org_a, prefix="organization.updated") == [
        ("organization.updated", {"require_mfa": {"from": False, "to": True}})]
    with org_a.scope():
        event = AuditEvent.objects.get(action="organization.updated")
    assert (event.actor_type, event.actor_id) == ("api_key", str(key.pk))
    # Setting it again changes nothing and writes nothing.
    again = org_a.client_for(plaintext).patch("/api/v1/organization", {"require_mfa": True})
    assert again.status_code == 200
    assert len(audit_actions(org_a, prefix="organization.updated")) == 1

def test_an_api_key_can_raise_the_bar_but_never_lift_it(org_a: OrgFixture) -> None:
    """A bearer token proves no second factor (security review): lifting the requirement
    needs a person in the console; the refusal changes and records nothing."""
    from station.accounts import services as account_services
    from tenants.authz import Principal

    client = org_a.client("owner")
    assert client.patch("/api/v1/organization", {"require_mfa": True}).status_code == 200
    off = client.patch("/api/v1/organization", {"require_mfa": False})
    assert off.status_code == 403, off.content
    assert "Only a person signed in to the console" in off.json()["detail"]
    assert _required(org_a) is True
    assert len(audit_actions(org_a, prefix="organization.updated")) == 1
    # The owner, signed in, can (the console's Security page calls this service).
    with org_a.scope():
        account_services.set_require_mfa(actor=Principal.for_user(org_a.owner),
                                         org=Organization.objects.get(pk=org_a.org.pk),
                                         required=False)
    assert _required(org_a) is False


def test_the_api_setting_is_in_force_in_the_console(org_a: OrgFixture, member: Any,
                                                    signed_in: Any) -> None:
    assert org_a.client("admin").patch("/api/v1/organization",
                                       {"require_mfa": True}).status_code == 200
    client = signed_in(member("dev@acme.example", "developer"))
    response = client.get(f"/o/{org_a.org.slug}/environments/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/totp/activate/"


@pytest.mark.parametrize("role", ["developer", "operator", "viewer", "auditor", "billing"])
def test_without_org_manage_the_policy_cannot_be_changed(org_a: OrgFixture, role: str) -> None:
    response = org_a.client(role).patch("/api/v1/organization", {"require_mfa": True})
    assert response.status_code == 403
    assert _required(org_a) is False
    assert audit_actions(org_a, prefix="organization.updated") == []


@pytest.mark.parametrize("body", [{}, {"require_mfa": "sometimes"}, {"require_mfa": None}])
def test_bad_bodies_are_refused_and_change_nothing(org_a: OrgFixture,
                                                   body: dict[str, Any]) -> None:
    response = org_a.client("owner").patch("/api/v1/organization", body, format="json")
    assert response.status_code == 422, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert _required(org_a) is False


def test_name_and_policy_change_together_or_not_at_all(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    both = client.patch("/api/v1/organization", {"name": "Acme Two", "require_mfa": True})
    assert both.status_code == 200
    assert [c for _, c in audit_actions(org_a, prefix="organization.updated")] == [
        {"name": {"from": org_a.org.name, "to": "Acme Two"}},
        {"require_mfa": {"from": False, "to": True}}]
    # A bad name refuses the whole request: the policy is not switched off on its own.
    refused = client.patch("/api/v1/organization", {"name": "  ", "require_mfa": False})
    assert refused.status_code == 422
    assert _required(org_a) is True


def test_the_schema_documents_the_field(org_a: OrgFixture) -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    props = schema["components"]["schemas"]["Organization"]["properties"]
    assert props["require_mfa"]["type"] == "boolean"
    assert "two-factor" in props["require_mfa"]["description"]
