"""The roles editor in the console: built-in roles read-only, custom roles created with
permission checkboxes grouped by area, edited, deleted; custom roles offered by the member
and API-key forms."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tenants import roles, services
from tenants.models import ApiKey, CustomRole, Membership
from tests.fixtures import SYSTEM

pytestmark = pytest.mark.django_db


def url(name: str, fx: Any, *args: object) -> str:
    return reverse(f"console:{name}", args=[fx.org.slug, *args])


def _role(fx: Any, name: str = "deployer", perms: tuple[str, ...] = ("org.read", "agents.run"),
          ) -> None:
    with fx.scope():
        services.create_custom_role(actor=SYSTEM, org=fx.org, name=name,
                                    permissions=list(perms), description="Ships agents")


def test_list_shows_built_in_read_only_and_custom_with_actions(login, org_a) -> None:
    _role(org_a)
    page = login(org_a.owner).get(url("roles", org_a)).content.decode()
    assert 'id="role-viewer"' in page and 'id="role-deployer"' in page
    assert url("roles-edit", org_a, "deployer") in page
    assert url("roles-delete", org_a, "deployer") in page
    assert url("roles-edit", org_a, "viewer") not in page
    assert url("roles-new", org_a) in page


def test_viewer_sees_roles_without_edit_actions(login, org_a, member) -> None:
    _role(org_a)
    client = login(member("v@acme.example", "viewer"))
    page = client.get(url("roles", org_a)).content.decode()
    assert 'id="role-deployer"' in page
    assert url("roles-edit", org_a, "deployer") not in page
    assert client.post(url("roles-new", org_a), {"name": "x"}).status_code == 403


def test_create_form_groups_permissions_by_area(login, org_a) -> None:
    page = login(org_a.owner).get(url("roles-new", org_a)).content.decode()
    for area in ("agents", "runs", "secrets", "members", "roles"):
        assert f'id="area-{area}"' in page
    assert 'value="agents.run"' in page


def test_create_edit_delete_through_the_console(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.post(url("roles-new", org_a), {
        "name": "deployer", "description": "Ships agents",
        "perm_org": ["org.read"], "perm_agents": ["agents.read", "agents.run"]})
    assert response.status_code == 302, response.content
    with org_a.scope():
        assert roles.permissions_of(org_a.org, "deployer") == {
            "org.read", "agents.read", "agents.run"}
    edit = client.get(url("roles-edit", org_a, "deployer")).content.decode()
    assert re.search(r'value="agents\.run"[^>]*checked', edit)
    assert not re.search(r'value="runs\.read"[^>]*checked', edit)
    response = client.post(url("roles-edit", org_a, "deployer"), {
        "description": "Reads agents", "perm_org": ["org.read"], "perm_agents": ["agents.read"]})
    assert response.status_code == 302
    with org_a.scope():
        role = CustomRole.objects.get(name="deployer")
        assert role.permissions == ["agents.read", "org.read"]
        assert role.description == "Reads agents"
    assert client.post(url("roles-delete", org_a, "deployer")).status_code == 302
    with org_a.scope():
        assert not CustomRole.objects.exists()
        assert list(AuditEvent.objects.filter(action__startswith="role.")
                    .order_by("sequence").values_list("action", flat=True)) == [
            "role.created", "role.updated", "role.deleted"]


def test_service_errors_come_back_on_the_form(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.post(url("roles-new", org_a), {"name": "admin", "perm_org": ["org.read"]})
    assert response.status_code == 200
    assert "built-in" in response.content.decode()
    response = client.post(url("roles-new", org_a), {"name": "empty"})
    assert "at least one permission" in response.content.decode()
    response = client.post(url("roles-new", org_a), {"name": "x", "perm_org": ["org.own"]})
    assert response.status_code == 200  # not a registry choice: refused by the form


def test_built_in_roles_have_no_edit_or_delete_page(login, org_a) -> None:
    client = login(org_a.owner)
    assert client.get(url("roles-edit", org_a, "viewer")).status_code == 404
    assert client.post(url("roles-delete", org_a, "owner")).status_code == 404


def test_another_orgs_role_is_a_404(login, org_a, org_b) -> None:
    _role(org_b, name="globex-role")
    client = login(org_a.owner)
    assert client.get(url("roles-edit", org_a, "globex-role")).status_code == 404
    assert client.post(url("roles-delete", org_a, "globex-role")).status_code == 404
    with org_b.scope():
        assert CustomRole.objects.filter(name="globex-role").exists()


def test_deleting_an_assigned_role_explains_why_not(login, org_a, member) -> None:
    _role(org_a)
    member("d@acme.example", "deployer")
    client = login(org_a.owner)
    response = client.post(url("roles-delete", org_a, "deployer"), follow=True)
    assert "1 members" in response.content.decode()
    with org_a.scope():
        assert CustomRole.objects.filter(name="deployer").exists()


def test_member_and_key_forms_offer_custom_roles(login, org_a, member) -> None:
    _role(org_a)
    client = login(org_a.owner)
    for name in ("members-invite", "apikeys-new", "members"):
        assert 'value="deployer"' in client.get(url(name, org_a)).content.decode(), name
    response = client.post(url("members-invite", org_a),
                           {"email": "d@acme.example", "role": "deployer"})
    assert response.status_code == 302
    with org_a.scope():
        m = Membership.objects.get(user__email="d@acme.example")
        assert m.role == "deployer"
    response = client.post(url("members-role", org_a, m.pk), {"role": "viewer"})
    assert response.status_code == 302
    response = client.post(url("apikeys-new", org_a),
                           {"name": "ci", "role": "deployer", "expires_in": "30"})
    assert response.status_code == 200 and "stk_" in response.content.decode()
    with org_a.scope():
        assert ApiKey.objects.get(name="ci").role == "deployer"
