"""Console: SCIM tokens page (create → shown once with the base URL; revoke; last used)."""

from __future__ import annotations

from station.scim.models import ScimToken


def test_admin_creates_token_shown_once_with_base_url(login, org_a):
    client = login(org_a.owner)
    slug = org_a.org.slug
    page = client.get(f"/o/{slug}/scim/")
    assert page.status_code == 200
    assert b"/scim/v2" in page.content
    created = client.post(f"/o/{slug}/scim/new/", {"name": "Okta"})
    assert created.status_code == 200
    html = created.content.decode()
    with org_a.scope():
        token = ScimToken.objects.get()
    assert f"scim_{token.token_id}_" in html  # the plaintext, this once
    assert "http://localhost:8000/scim/v2" in html
    assert created["Cache-Control"].startswith("max-age=0")
    listing = client.get(f"/o/{slug}/scim/").content.decode()
    assert token.display in listing
    assert f"scim_{token.token_id}_" not in listing.replace(token.display, "")
    # The token works against /scim/v2 for this org.
    plaintext = html.split('id="new-token" class="secret" type="text" value="')[1].split('"')[0]
    response = client.get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert response.status_code == 200


def test_revoke_from_console(login, org_a):
    client = login(org_a.owner)
    slug = org_a.org.slug
    client.post(f"/o/{slug}/scim/new/", {"name": "Entra"})
    with org_a.scope():
        token = ScimToken.objects.get()
    assert client.get(f"/o/{slug}/scim/{token.pk}/revoke/").status_code == 200
    response = client.post(f"/o/{slug}/scim/{token.pk}/revoke/")
    assert response.status_code == 302
    with org_a.scope():
        assert ScimToken.objects.get().revoked_at is not None
    assert b"revoked" in client.get(f"/o/{slug}/scim/").content


def test_developer_cannot_open_scim_pages(login, org_a, member):
    client = login(member("dev@acme.example", "developer"))
    slug = org_a.org.slug
    assert client.get(f"/o/{slug}/scim/").status_code == 403
    assert client.post(f"/o/{slug}/scim/new/", {"name": "x"}).status_code == 403
    with org_a.scope():
        assert not ScimToken.objects.exists()
