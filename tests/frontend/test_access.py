"""Who may open which console page: login, org membership (404) and permission (403).

The route tests enumerate frontend.urls, so every new console page is covered automatically.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, reverse

from frontend import urls as console_urls
from tenants.permissions import role_permissions

DUMMY_ID = uuid.UUID("00000000-0000-4000-8000-000000000000")


def _patterns(
    patterns: list[URLPattern | URLResolver], prefix: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _patterns(p.url_patterns, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern), p


def _org_routes() -> list[tuple[str, URLPattern]]:
    """Every console page under /o/<org_slug>/, however deeply included."""
    return [(p.name, p) for route, p in _patterns(console_urls.urlpatterns)
            if "<slug:org_slug>" in route]


ORG_ROUTES = _org_routes()


def org_url(name: str, slug: str) -> str:
    pattern = dict(ORG_ROUTES)[name]
    kwargs: dict[str, object] = {"org_slug": slug}
    kwargs.update({k: DUMMY_ID for k in pattern.pattern.converters})
    return reverse(f"console:{name}", kwargs=kwargs)


def test_console_has_org_routes() -> None:
    names = {name for name, _ in ORG_ROUTES}
    assert {"environments", "members", "roles", "apikeys", "audit"} <= names


@pytest.mark.parametrize("name", [name for name, _ in ORG_ROUTES])
def test_every_org_page_goes_through_org_view(name: str) -> None:
    view = dict(ORG_ROUTES)[name].callback
    assert hasattr(view, "required_permission"), f"{name} is not wrapped in org_view()"


@pytest.mark.parametrize("name", [name for name, _ in ORG_ROUTES])
def test_login_required(client, org_a, name: str) -> None:
    url = org_url(name, org_a.org.slug)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_home_requires_login(client, db) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("name", [name for name, _ in ORG_ROUTES])
def test_member_of_other_org_gets_404(login, org_a, org_b, name: str, method: str) -> None:
    client = login(org_a.owner)
    foreign = getattr(client, method)(org_url(name, org_b.org.slug))
    missing = getattr(client, method)(org_url(name, "no-such-org"))
    assert foreign.status_code == 404
    assert missing.status_code == 404
    # Nothing tells a foreign org apart from a nonexistent one.
    assert org_b.org.name.encode() not in foreign.content
    assert _normalized(foreign.content, b"globex") == _normalized(missing.content, b"no-such-org")


def _normalized(content: bytes, slug: bytes) -> bytes:
    """The page with its per-render CSRF tokens and the requested slug blanked out."""
    content = re.sub(rb'(csrfmiddlewaretoken" value="|X-CSRFToken": ")[^"]+', rb"\1", content)
    return content.replace(slug, b"x")


@pytest.mark.parametrize("name", [name for name, _ in ORG_ROUTES])
@pytest.mark.parametrize("role", ["viewer", "auditor", "billing"])
def test_pages_refuse_roles_without_their_permission(
    login, org_a, member, name: str, role: str
) -> None:
    view = dict(ORG_ROUTES)[name].callback
    permission = view.required_permission  # type: ignore[attr-defined]
    client = login(member(f"{role}@acme.example", role))
    url = org_url(name, org_a.org.slug)
    if permission in role_permissions(role):
        # Allowed: the page opens (or 404s on the dummy object id), never 403.
        assert client.get(url).status_code in {200, 302, 404}
    else:
        assert client.get(url).status_code == 403
        assert client.post(url).status_code == 403


@pytest.mark.parametrize(
    "name", ["environments-new", "members-invite", "apikeys-new", "members-role",
             "environments-delete", "apikeys-revoke", "members-remove",
             "members-environment-role"])
def test_viewer_gets_403_on_write_pages(login, org_a, member, name: str) -> None:
    client = login(member("viewer@acme.example", "viewer"))
    response = client.post(org_url(name, org_a.org.slug), {"name": "x", "slug": "x"})
    assert response.status_code == 403
    assert b"Permission denied" in response.content


def test_home_redirects_to_first_org(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.get("/", follow=True)
    assert response.redirect_chain[0][0] == f"/o/{org_a.org.slug}/"
    assert response.request["PATH_INFO"] == f"/o/{org_a.org.slug}/environments/"
    assert response.status_code == 200


def test_home_without_orgs_says_so(login, db) -> None:
    from tenants.models import User

    user = User.objects.create_user(email="lonely@example.com")
    response = login(user).get("/")
    assert response.status_code == 200
    assert b"No organizations yet" in response.content


def test_org_switcher_lists_only_own_orgs(login, org_a, org_b, make_org) -> None:
    other = make_org("initech", owner_email=org_a.owner.email)
    client = login(org_a.owner)
    page = client.get(reverse("console:environments", args=[org_a.org.slug])).content.decode()
    assert f"/o/{other.org.slug}/" in page
    assert f"/o/{org_b.org.slug}/" not in page
    # The other org's pages open for this user too.
    assert client.get(reverse("console:environments", args=[other.org.slug])).status_code == 200
