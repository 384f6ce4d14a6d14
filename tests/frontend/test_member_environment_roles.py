"""Per-environment role narrowing in the console: the members list, a member's page, the
set/remove form (plain post and htmx) and the 403 page that names a narrowing."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from station.vault import services as vault
from tenants import services
from tenants.authz import Principal
from tenants.models import Environment, EnvironmentRole, Membership, User
from tests.fixtures import SYSTEM, OrgFixture


def url(name: str, fx: OrgFixture, *args: object) -> str:
    return reverse(f"console:{name}", args=[fx.org.slug, *args])


def text(response: Any) -> str:
    return response.content.decode()


def _membership(fx: OrgFixture, user: User) -> Membership:
    with fx.scope():
        return Membership.objects.select_related("user").get(user=user)


def _env(fx: OrgFixture, slug: str) -> Environment:
    with fx.scope():
        return Environment.objects.get(slug=slug)


def _narrow(fx: OrgFixture, user: User, env_slug: str, role: str | None) -> Membership:
    membership = _membership(fx, user)
    with fx.scope():
        services.set_environment_role(actor=SYSTEM, membership=membership,
                                      environment=Environment.objects.get(slug=env_slug),
                                      role=role)
    return membership


def _narrowings(fx: OrgFixture, membership: Membership) -> dict[str, str]:
    with fx.scope():
        return dict(EnvironmentRole.objects.filter(membership=membership)
                    .values_list("environment__slug", "role"))


def _events(fx: OrgFixture) -> list[AuditEvent]:
    with fx.scope():
        return list(AuditEvent.objects.filter(action="member.environment_role_set")
                    .order_by("sequence"))


def _set_url(fx: OrgFixture, membership: Membership, env_slug: str) -> str:
    return url("members-environment-role", fx, membership.pk, _env(fx, env_slug).pk)


# --- showing narrowings ------------------------------------------------------------------------


def test_members_list_shows_org_role_and_narrowings(login, org_a, member) -> None:
    dev = member("dev@acme.example", "developer")
    membership = _narrow(org_a, dev, "prod", "viewer")
    for viewer in (org_a.owner, member("v@acme.example", "viewer")):
        page = text(login(viewer).get(url("members", org_a)))
        row = page[page.index(f'id="member-{membership.pk}"'):]
        row = row[:row.index("</tr>")]
        assert "<strong>viewer</strong> in <code>prod</code>" in row
        assert url("members-detail", org_a, membership.pk) in row


def test_member_page_lists_every_environment(login, org_a, member) -> None:
    dev = member("dev@acme.example", "developer")
    membership = _narrow(org_a, dev, "prod", "viewer")
    page = text(login(member("v@acme.example", "viewer")).get(
        url("members-detail", org_a, membership.pk)))
    for slug in ("dev", "staging", "prod"):
        assert f'data-environment="{slug}"' in page
    assert "narrowed from developer" in page
    # A reader sees the roles, not the controls.
    assert _set_url(org_a, membership, "prod") not in page and "<select" not in page


# --- setting and removing --------------------------------------------------------------------


def test_owner_narrows_a_member_with_a_plain_post(login, org_a, member) -> None:
    membership = _membership(org_a, member("dev@acme.example", "developer"))
    client = login(org_a.owner)
    page = text(client.get(url("members-detail", org_a, membership.pk)))
    assert _set_url(org_a, membership, "prod") in page

    response = client.post(_set_url(org_a, membership, "prod"), {"role": "viewer"}, follow=True)
    assert response.redirect_chain[-1][0] == url("members-detail", org_a, membership.pk)
    assert "dev@acme.example is now viewer in prod." in text(response)
    assert _narrowings(org_a, membership) == {"prod": "viewer"}

    [event] = _events(org_a)
    assert event.actor_id == str(org_a.owner.pk)
    assert event.target_id == str(membership.pk)
    assert event.environment_id == _env(org_a, "prod").pk
    assert event.changes == {"environment": "prod", "role": {"from": None, "to": "viewer"}}


def test_narrowing_with_htmx_returns_the_row(login, org_a, member) -> None:
    membership = _membership(org_a, member("dev@acme.example", "developer"))
    prod = _env(org_a, "prod")
    response = login(org_a.owner).post(_set_url(org_a, membership, "prod"), {"role": "operator"},
                                       HTTP_HX_REQUEST="true")
    page = text(response)
    assert response.status_code == 200
    assert page.lstrip().startswith(f'<tr id="env-role-{prod.pk}"')
    assert '<option value="operator" selected>' in page
    assert 'hx-swap-oob="true"' in page and "dev@acme.example is now operator in prod." in page
    assert _narrowings(org_a, membership) == {"prod": "operator"}


def test_removing_a_narrowing(login, org_a, member) -> None:
    membership = _narrow(org_a, member("dev@acme.example", "developer"), "prod", "viewer")
    response = login(org_a.owner).post(_set_url(org_a, membership, "prod"), {"role": ""},
                                       follow=True)
    assert ("dev@acme.example is no longer narrowed in prod: their role developer applies "
            "there.") in text(response)
    assert _narrowings(org_a, membership) == {}
    removed = _events(org_a)[-1]
    assert removed.actor_id == str(org_a.owner.pk)
    assert removed.changes == {"environment": "prod", "role": {"from": "viewer", "to": None}}


def test_custom_role_is_offered_and_accepted(login, org_a, member) -> None:
    with org_a.scope():
        services.create_custom_role(actor=SYSTEM, org=org_a.org, name="deployer",
                                    permissions=["agents.read", "agents.run", "runs.read"])
    membership = _membership(org_a, member("dev@acme.example", "developer"))
    client = login(org_a.owner)
    page = text(client.get(url("members-detail", org_a, membership.pk)))
    assert '<option value="deployer">deployer (custom)</option>' in page
    client.post(_set_url(org_a, membership, "staging"), {"role": "deployer"})
    assert _narrowings(org_a, membership) == {"staging": "deployer"}


def test_standalone_form_page_works_without_javascript(login, org_a, member) -> None:
    membership = _narrow(org_a, member("dev@acme.example", "developer"), "prod", "viewer")
    page = text(login(org_a.owner).get(_set_url(org_a, membership, "prod")))
    assert "Role of dev@acme.example in Production" in page
    assert '<option value="viewer" selected>' in page


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["developer", "viewer", "operator"])
def test_member_without_members_manage_gets_403(login, org_a, member, role: str) -> None:
    target = _membership(org_a, member("dev@acme.example", "developer"))
    client = login(member(f"{role}x@acme.example", role))
    response = client.post(_set_url(org_a, target, "prod"), {"role": "viewer"})
    assert response.status_code == 403
    assert "members.manage" in text(response)
    assert client.get(_set_url(org_a, target, "prod")).status_code == 403
    assert _narrowings(org_a, target) == {}
    assert _events(org_a) == []


@pytest.mark.parametrize("htmx", [False, True])
def test_narrowing_yourself_is_refused_with_a_message(login, org_a, member, htmx: bool) -> None:
    admin = member("admin@acme.example", "admin")
    own = _membership(org_a, admin)
    client = login(admin)
    page = text(client.get(url("members-detail", org_a, own.pk)))
    assert "You cannot change your own environment roles." in page
    assert "<select" not in page

    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = client.post(_set_url(org_a, own, "prod"), {"role": "viewer"}, **headers)
    assert response.status_code == 200
    assert "You cannot change your own environment role." in text(response)
    assert _narrowings(org_a, own) == {}
    assert _events(org_a) == []


def test_admin_cannot_narrow_an_owner(login, org_a, member) -> None:
    admin = member("admin@acme.example", "admin")
    owner = _membership(org_a, org_a.owner)
    client = login(admin)
    page = text(client.get(url("members-detail", org_a, owner.pk)))
    assert "Their role owner holds permissions you do not hold in prod." in page
    page = text(client.post(_set_url(org_a, owner, "prod"), {"role": "viewer"}))
    assert "You cannot grant permissions you do not hold: billing.manage." in page
    assert _narrowings(org_a, owner) == {}


def test_admin_narrowed_in_prod_cannot_change_narrowings_there(login, org_a, member) -> None:
    admin = member("admin@acme.example", "admin")
    _narrow(org_a, admin, "prod", "viewer")
    target = _membership(org_a, member("dev@acme.example", "developer"))
    client = login(admin)
    page = text(client.get(url("members-detail", org_a, target.pk)))
    assert "Your own role is narrowed in prod." in page
    assert _set_url(org_a, target, "dev") in page and _set_url(org_a, target, "prod") not in page

    page = text(client.post(_set_url(org_a, target, "prod"), {"role": "viewer"}))
    # authorize() says where the narrowing is, not only which permission is missing.
    assert ("You need the &#x27;members.manage&#x27; permission in prod, where your role is "
            "narrowed to viewer.") in page
    assert _narrowings(org_a, target) == {}
    # Elsewhere the admin's org role applies.
    client.post(_set_url(org_a, target, "dev"), {"role": "viewer"})
    assert _narrowings(org_a, target) == {"dev": "viewer"}


def test_unknown_role_is_an_inline_error(login, org_a, member) -> None:
    membership = _membership(org_a, member("dev@acme.example", "developer"))
    response = login(org_a.owner).post(_set_url(org_a, membership, "prod"), {"role": "wizard"})
    assert response.status_code == 200
    assert "Select a valid choice." in text(response)
    assert _narrowings(org_a, membership) == {}


def test_other_orgs_membership_and_environment_are_404(login, org_a, org_b, member) -> None:
    mine = _membership(org_a, member("dev@acme.example", "developer"))
    foreign = _membership(org_b, org_b.owner)
    foreign_env = _env(org_b, "prod")
    client = login(org_a.owner)
    for target in (
        url("members-detail", org_a, foreign.pk),
        url("members-environment-role", org_a, foreign.pk, _env(org_a, "prod").pk),
        url("members-environment-role", org_a, mine.pk, foreign_env.pk),
    ):
        assert client.get(target).status_code == 404
        assert client.post(target, {"role": "viewer"}).status_code == 404
    assert _narrowings(org_b, foreign) == {}
    assert _narrowings(org_a, mine) == {}


# --- the 403 page names the narrowing ----------------------------------------------------------


def test_403_page_names_the_environment_that_narrows_the_member(login, org_a, member) -> None:
    dev = member("dev@acme.example", "developer")
    with org_a.scope():
        variable = vault.set_variable(actor=SYSTEM, environment=_env(org_a, "prod"),
                                      name="REGION", value="eu")
    _narrow(org_a, dev, "prod", "viewer")
    response = login(dev).get(url("variables-edit", org_a, variable.pk))
    page = text(response)
    assert response.status_code == 403
    assert "in <strong>Production</strong> (<code>prod</code>) your role is narrowed to " \
           "<strong>viewer</strong>" in page
    assert "Your role <strong>developer</strong> includes it" in page


def test_403_page_blames_the_org_role_when_it_lacks_the_permission(login, org_a, member) -> None:
    viewer = member("v@acme.example", "viewer")
    with org_a.scope():
        variable = vault.set_variable(actor=SYSTEM, environment=_env(org_a, "prod"),
                                      name="REGION", value="eu")
    # A narrowing exists, but the org role already lacks the permission: it is the reason.
    _narrow(org_a, viewer, "prod", "auditor")
    page = text(login(viewer).get(url("variables-edit", org_a, variable.pk)))
    assert "which your role <strong>viewer</strong> does not include" in page
    assert "narrowed" not in page


def test_narrowing_refusal_explains_only_the_principals_own_narrowing(org_a, member) -> None:
    from tenants.authz import narrowing_refusal

    dev = member("dev@acme.example", "developer")
    _narrow(org_a, dev, "prod", "viewer")
    with org_a.scope():
        prod = Environment.objects.get(slug="prod")
        dev_env = Environment.objects.get(slug="dev")
        me = Principal.for_user(dev)
        found = narrowing_refusal(me, "variables.write", org_a.org, prod)
        assert found is not None and (found.environment, found.role) == (prod, "viewer")
        assert narrowing_refusal(me, "variables.write", org_a.org, dev_env) is None
        assert narrowing_refusal(me, "variables.read", org_a.org, prod) is None  # allowed
        assert narrowing_refusal(me, "variables.write", org_a.org, None) is None
        # Another member's view of the same environment says nothing about dev's narrowing.
        assert narrowing_refusal(Principal.for_user(org_a.owner), "variables.write",
                                 org_a.org, prod) is None


# --- pages that choose among environments -----------------------------------------------------


@pytest.mark.parametrize(("page", "permission"), [
    ("mcp-new", "tools.manage"), ("providers-new", "agents.write"),
    ("agents-new", "agents.write"), ("agents-import", "agents.write"),
    ("runs-new", "agents.run"), ("triggers-schedules-new", "agents.write"),
    ("triggers-inbound-new", "agents.write"), ("triggers-outbound-new", "agents.write"),
])
def test_a_page_choosing_an_environment_names_every_narrowing_when_none_is_left(
        login, org_a, member, page: str, permission: str) -> None:
    admin = member("ops@acme.example", "admin")
    with org_a.scope():
        slugs = list(Environment.objects.order_by("created_at").values_list("slug", flat=True))
    for slug in slugs:
        _narrow(org_a, admin, slug, "viewer")
    client = login(admin)
    response = client.get(url(page, org_a))
    body = text(response)
    assert response.status_code == 403
    assert f"<code>{permission}</code>" in body
    assert "Your role <strong>admin</strong> includes it, but it is narrowed in every " \
           "environment" in body
    for slug in slugs:
        assert f"(<code>{slug}</code>): narrowed to <strong>viewer</strong>" in body
    # Lifting one narrowing opens the page, in that environment.
    _narrow(org_a, admin, slugs[-1], None)
    assert client.get(url(page, org_a)).status_code == 200


def test_a_page_needing_two_permissions_names_the_one_the_org_role_lacks(
        login, org_a, member) -> None:
    # A custom role with agents.write (what the page's gate checks) but not agents.run.
    with org_a.scope():
        services.create_custom_role(actor=SYSTEM, org=org_a.org, name="author",
                                    permissions=["agents.read", "agents.write"])
    author = member("author@acme.example", "author")
    response = login(author).get(url("triggers-schedules-new", org_a))
    body = text(response)
    assert response.status_code == 403
    assert "It needs the <code>agents.run</code> permission" in body
    assert "which your role <strong>author</strong> does not include" in body
    assert "narrowed" not in body
