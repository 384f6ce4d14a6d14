"""Console pages through the Django test client: forms, service errors, messages, htmx."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from audit.models import AuditEvent
from tenants import apikeys
from tenants.models import ApiKey, Environment, Membership


def url(name: str, fx, *args: object) -> str:
    return reverse(f"console:{name}", args=[fx.org.slug, *args])


def text(response) -> str:
    return response.content.decode()


# --- layout, auth pages ---------------------------------------------------------------------


def test_login_page_uses_console_look(client, db) -> None:
    page = text(client.get("/accounts/login/"))
    assert "Sign in to Station" in page
    assert "station/console.css" in page
    assert "Forgot your password?" in page


def test_password_reset_page_uses_console_look(client, db) -> None:
    page = text(client.get("/accounts/password/reset/"))
    assert "station/console.css" in page
    assert 'name="email"' in page


def test_login_with_password_lands_in_first_org(client, org_a) -> None:
    org_a.owner.set_password("correct-horse-battery-staple")
    org_a.owner.save()
    response = client.post("/accounts/login/", {
        "login": org_a.owner.email, "password": "correct-horse-battery-staple"}, follow=True)
    assert response.request["PATH_INFO"] == url("environments", org_a)


def test_layout_loads_htmx_from_django_htmx_and_lists_nav(login, org_a) -> None:
    page = text(login(org_a.owner).get(url("environments", org_a)))
    assert "django_htmx/htmx-2.min.js" in page
    assert finders.find("django_htmx/htmx-2.min.js")
    for label in ("Environments", "Members", "Roles", "API keys", "Audit log"):
        assert f">{label}</a>" in page


def test_nav_hides_pages_the_role_cannot_open(login, org_a, member) -> None:
    page = text(login(member("viewer@acme.example", "viewer")).get(url("environments", org_a)))
    assert ">Members</a>" in page
    assert ">Audit log</a>" not in page
    assert "New environment" not in page


# --- environments -----------------------------------------------------------------------------


def test_create_environment(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.post(url("environments-new", org_a), {"name": "QA", "slug": "qa"},
                           follow=True)
    assert response.request["PATH_INFO"] == url("environments", org_a)
    assert "Environment “QA” created." in text(response)
    with org_a.scope():
        assert Environment.objects.filter(slug="qa", name="QA").exists()


def test_create_environment_shows_inline_errors(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.post(url("environments-new", org_a), {"name": "", "slug": "Not A Slug"})
    assert response.status_code == 200
    page = text(response)
    assert page.count('class="field-error"') == 2
    assert "This field is required." in page
    assert "lowercase letters" in page  # the service's slug rule, on the slug field


def test_duplicate_environment_slug_error_is_on_the_slug_field(login, org_a) -> None:
    response = login(org_a.owner).post(url("environments-new", org_a),
                                       {"name": "Dev again", "slug": "dev"})
    page = text(response)
    assert "This slug is taken in this organization." in page
    slug_field = page[page.index('for="id_slug"'):]
    assert slug_field.index("This slug is taken") < slug_field.index("</div>")


def test_rename_and_delete_environment(login, org_a) -> None:
    client = login(org_a.owner)
    with org_a.scope():
        env = Environment.objects.get(slug="staging")
    response = client.post(url("environments-rename", org_a, env.pk), {"name": "Pre-prod"},
                           follow=True)
    assert "renamed to “Pre-prod”" in text(response)
    assert "Delete environment" in text(client.get(url("environments-delete", org_a, env.pk)))
    response = client.post(url("environments-delete", org_a, env.pk), follow=True)
    assert "Environment “Pre-prod” deleted." in text(response)
    with org_a.scope():
        assert not Environment.objects.filter(pk=env.pk).exists()


def test_other_orgs_environment_is_404_inside_own_org(login, org_a, org_b) -> None:
    with org_b.scope():
        foreign = Environment.objects.get(slug="dev")
    client = login(org_a.owner)
    assert client.get(url("environments-rename", org_a, foreign.pk)).status_code == 404
    assert client.post(url("environments-delete", org_a, foreign.pk)).status_code == 404
    with org_b.scope():
        assert Environment.objects.filter(pk=foreign.pk).exists()


# --- members ----------------------------------------------------------------------------------


def test_invite_member(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.post(url("members-invite", org_a),
                           {"email": "new@acme.example", "role": "developer"}, follow=True)
    assert "new@acme.example was added as developer." in text(response)
    with org_a.scope():
        assert Membership.objects.get(user__email="new@acme.example").role == "developer"


def test_invite_errors_are_inline(login, org_a) -> None:
    client = login(org_a.owner)
    page = text(client.post(url("members-invite", org_a), {"email": "nope", "role": "developer"}))
    assert "Enter a valid email address." in page
    page = text(client.post(url("members-invite", org_a),
                            {"email": org_a.owner.email, "role": "viewer"}))
    assert "Already a member of this organization." in page


def test_admin_cannot_invite_an_owner(login, org_a, member) -> None:
    client = login(member("admin@acme.example", "admin"))
    response = client.post(url("members-invite", org_a),
                           {"email": "boss@acme.example", "role": "owner"})
    assert response.status_code == 200
    assert "You cannot grant permissions you do not hold: billing.manage." in text(response)


def test_change_role_with_plain_post(login, org_a, member) -> None:
    user = member("dev@acme.example", "developer")
    with org_a.scope():
        membership = Membership.objects.get(user=user)
    client = login(org_a.owner)
    response = client.post(url("members-role", org_a, membership.pk), {"role": "operator"},
                           follow=True)
    assert "dev@acme.example is now operator." in text(response)
    with org_a.scope():
        assert Membership.objects.get(pk=membership.pk).role == "operator"


def test_change_role_with_htmx_returns_the_row(login, org_a, member) -> None:
    user = member("dev@acme.example", "developer")
    with org_a.scope():
        membership = Membership.objects.get(user=user)
    response = login(org_a.owner).post(
        url("members-role", org_a, membership.pk), {"role": "viewer"}, HTTP_HX_REQUEST="true")
    page = text(response)
    assert response.status_code == 200
    assert page.lstrip().startswith(f'<tr id="member-{membership.pk}"')
    assert '<option value="viewer" selected>' in page
    assert 'hx-swap-oob="true"' in page and "dev@acme.example is now viewer." in page


def test_last_owner_cannot_be_demoted_error_is_shown(login, org_a) -> None:
    with org_a.scope():
        membership = Membership.objects.get(user=org_a.owner)
    client = login(org_a.owner)
    page = text(client.post(url("members-role", org_a, membership.pk), {"role": "admin"}))
    assert "This member is the organization&#x27;s last owner." in page
    assert "The last owner cannot be demoted" in page
    page = text(client.post(url("members-role", org_a, membership.pk), {"role": "admin"},
                            HTTP_HX_REQUEST="true"))
    assert "last owner" in page
    assert '<option value="owner" selected>' in page
    with org_a.scope():
        assert Membership.objects.get(pk=membership.pk).role == "owner"


def test_last_owner_cannot_be_removed(login, org_a) -> None:
    with org_a.scope():
        membership = Membership.objects.get(user=org_a.owner)
    response = login(org_a.owner).post(url("members-remove", org_a, membership.pk), follow=True)
    assert "The last owner cannot be removed" in text(response)
    assert 'class="flash flash-error"' in text(response)


def test_remove_member(login, org_a, member) -> None:
    user = member("bye@acme.example", "viewer")
    with org_a.scope():
        membership = Membership.objects.get(user=user)
    response = login(org_a.owner).post(url("members-remove", org_a, membership.pk), follow=True)
    assert "bye@acme.example was removed." in text(response)
    with org_a.scope():
        assert not Membership.objects.filter(pk=membership.pk).exists()


def test_roles_page_lists_every_role_and_permission(login, org_a, member) -> None:
    from tenants.permissions import PERMISSIONS, ROLES

    page = text(login(member("v@acme.example", "viewer")).get(url("roles", org_a)))
    for role in ROLES:
        assert f'id="role-{role}"' in page
    for permission in PERMISSIONS:
        assert f"<code>{permission}</code>" in page


# --- API keys ---------------------------------------------------------------------------------


def _create_key(client, fx, name: str = "CI pipeline") -> str:
    response = client.post(url("apikeys-new", fx),
                           {"name": name, "role": "viewer", "environment": "", "expires_in": "30"})
    assert response.status_code == 200
    page = text(response)
    assert "This is the only time it is shown" in page
    start = page.index('value="stk_') + len('value="')
    return page[start:page.index('"', start)]


def test_api_key_is_shown_once(login, org_a) -> None:
    client = login(org_a.owner)
    plaintext = _create_key(client, org_a)
    assert plaintext.startswith("stk_")
    secret = apikeys.parse(plaintext)[1]  # secrets may contain "_"
    assert response_never_contains(client, org_a, plaintext, secret)
    with org_a.scope():
        key = ApiKey.objects.get(name="CI pipeline")
    assert key.display in text(client.get(url("apikeys", org_a)))
    assert key.expires_at is not None


def response_never_contains(client, fx, plaintext: str, secret: str) -> bool:
    from tests.frontend.test_access import ORG_ROUTES

    pages = [name for name, pattern in ORG_ROUTES if not pattern.pattern.converters]
    assert "apikeys" in pages and "audit" in pages
    for name in pages:
        page = text(client.get(url(name, fx), follow=True))
        assert plaintext not in page, name
        assert secret not in page, name
    return True


def test_api_key_created_for_one_environment(login, org_a) -> None:
    with org_a.scope():
        env = Environment.objects.get(slug="prod")
    client = login(org_a.owner)
    response = client.post(url("apikeys-new", org_a), {
        "name": "Prod deploy", "role": "operator", "environment": str(env.pk), "expires_in": ""})
    assert "Production" in text(response)
    with org_a.scope():
        key = ApiKey.objects.get(name="Prod deploy")
    assert key.environment_id == env.pk
    assert key.expires_at is None


def test_api_key_form_errors_inline(login, org_a, member) -> None:
    client = login(member("dev@acme.example", "developer"))
    # Developers lack apikeys.manage: refused before the form.
    assert client.post(url("apikeys-new", org_a), {"name": "x"}).status_code == 403
    client = login(org_a.owner)
    page = text(client.post(url("apikeys-new", org_a),
                            {"name": "", "role": "wizard", "environment": "nope"}))
    assert "This field is required." in page
    assert "Select a valid choice. wizard is not one of the available choices." in page
    assert "Select a valid choice. nope is not one of the available choices." in page


def test_revoke_api_key_plain_and_htmx(login, org_a) -> None:
    client = login(org_a.owner)
    _create_key(client, org_a, "first")
    _create_key(client, org_a, "second")
    with org_a.scope():
        first = ApiKey.objects.get(name="first")
        second = ApiKey.objects.get(name="second")
    assert "Revoke key" in text(client.get(url("apikeys-revoke", org_a, first.pk)))
    response = client.post(url("apikeys-revoke", org_a, first.pk), follow=True)
    assert "API key “first”" in text(response) and "revoked." in text(response)
    response = client.post(url("apikeys-revoke", org_a, second.pk), HTTP_HX_REQUEST="true")
    page = text(response)
    assert page.lstrip().startswith(f'<tr id="key-{second.pk}"')
    assert "badge-danger" in page
    with org_a.scope():
        assert all(k.revoked_at for k in ApiKey.objects.all())


# --- audit log --------------------------------------------------------------------------------


def test_audit_log_lists_and_filters_events(login, org_a) -> None:
    client = login(org_a.owner)
    client.post(url("environments-new", org_a), {"name": "QA", "slug": "qa"})
    _create_key(client, org_a)
    page = text(client.get(url("audit", org_a)))
    for action in ("organization.created", "environment.created", "apikey.created"):
        assert f'data-action="{action}"' in page
    page = text(client.get(url("audit", org_a), {"action": "apikey.created"}))
    assert 'data-action="apikey.created"' in page
    assert 'data-action="environment.created"' not in page
    page = text(client.get(url("audit", org_a), {"action": "environment."}))
    assert 'data-action="environment.created"' in page
    assert 'data-action="apikey.created"' not in page
    page = text(client.get(url("audit", org_a), {"actor": org_a.owner.email}))
    assert 'data-action="environment.created"' in page
    assert 'data-action="organization.created"' not in page  # done by the platform


def test_audit_time_range_filter_and_errors(login, org_a) -> None:
    client = login(org_a.owner)
    page = text(client.get(url("audit", org_a), {"since": "2000-01-01T00:00",
                                                  "until": "2000-01-02T00:00"}))
    assert "No events match these filters" in page
    page = text(client.get(url("audit", org_a), {"since": "2000-01-01T00:00"}))
    assert 'data-action="organization.created"' in page
    page = text(client.get(url("audit", org_a), {"since": "2030-01-02T00:00",
                                                  "until": "2030-01-01T00:00"}))
    assert "Must be later than" in page
    assert "Enter a valid date/time." in text(client.get(url("audit", org_a), {"since": "soon"}))


def test_audit_log_paginates(login, org_a, monkeypatch: pytest.MonkeyPatch) -> None:
    from frontend.views import audit

    monkeypatch.setattr(audit, "PAGE_SIZE", 2)
    client = login(org_a.owner)
    for slug in ("qa", "perf", "demo"):
        client.post(url("environments-new", org_a), {"name": slug.upper(), "slug": slug})
    with org_a.scope():
        total = AuditEvent.objects.count()
    first = text(client.get(url("audit", org_a), {"action": "environment."}))
    assert "Page 1 of 2" in first and "page=2" in first and "action=environment." in first
    second = text(client.get(url("audit", org_a), {"action": "environment.", "page": 2}))
    assert "Page 2 of 2" in second
    assert second.count("<tr data-action=") == 1
    assert total == 4


def test_audit_change_values_are_unambiguous():
    from audit.services import change
    from frontend.templatetags.console import change_value

    assert change_value(change("viewer", "admin")) == "viewer → admin"
    # A two-item list (e.g. two scopes) is a value, not a before/after pair.
    assert change_value(["a.read", "b.read"]) == "a.read, b.read"
