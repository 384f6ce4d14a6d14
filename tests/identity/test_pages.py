"""Console pages: SSO setup shows the SP values, domains can be added and verified, groups
mapped. (tests/frontend/test_access.py covers who may open them.)"""

from __future__ import annotations

from typing import Any

import pytest

from station.identity import dns
from station.identity.models import GroupRoleMapping, SamlConnection, VerifiedDomain
from tests.fixtures import OrgFixture
from tests.identity.conftest import IDP_ENTITY, IDP_SSO

pytestmark = pytest.mark.django_db


def test_setup_page_shows_sp_values_and_saves_the_idp(login: Any, org_a: OrgFixture,
                                                       idp_keys: Any) -> None:
    client = login(org_a.owner)
    page = client.get("/o/acme/sso/")
    assert page.status_code == 200
    assert b"http://station.test/accounts/saml/acme/acs/" in page.content
    assert b"http://station.test/accounts/saml/acme/metadata/" in page.content
    bad = client.post("/o/acme/sso/", {"entity_id": IDP_ENTITY, "sso_url": IDP_SSO,
                                       "x509cert": "nope", "enabled": "on",
                                       "default_role": "viewer"})
    assert bad.status_code == 200 and b"not an X.509 certificate" in bad.content
    ok = client.post("/o/acme/sso/", {"entity_id": IDP_ENTITY, "sso_url": IDP_SSO,
                                      "x509cert": idp_keys.cert_pem, "enabled": "on",
                                      "default_role": "viewer", "group_attribute": "groups"})
    assert ok.status_code == 302
    with org_a.scope():
        assert SamlConnection.objects.get().idp_entity_id == IDP_ENTITY


def test_domains_page_adds_and_verifies(login: Any, org_a: OrgFixture) -> None:
    client = login(org_a.owner)
    assert client.post("/o/acme/sso/domains/", {"domain": "acme.example"}).status_code == 302
    with org_a.scope():
        row = VerifiedDomain.objects.get()
    page = client.get("/o/acme/sso/domains/")
    assert row.txt_value.encode() in page.content
    failed = client.post(f"/o/acme/sso/domains/{row.pk}/verify/", follow=True)
    assert b"No TXT record" in failed.content
    dns.use_resolver(dns.StaticResolver({"acme.example": [row.txt_value]}))
    done = client.post(f"/o/acme/sso/domains/{row.pk}/verify/", follow=True)
    assert b"acme.example is verified" in done.content


def test_groups_page_maps_a_group(login: Any, org_a: OrgFixture) -> None:
    client = login(org_a.owner)
    assert client.post("/o/acme/sso/groups/", {"group": "eng", "role": "developer"}
                       ).status_code == 302
    with org_a.scope():
        mapping = GroupRoleMapping.objects.get()
    assert b"eng" in client.get("/o/acme/sso/groups/").content
    assert client.post(f"/o/acme/sso/groups/{mapping.pk}/delete/").status_code == 302
    with org_a.scope():
        assert not GroupRoleMapping.objects.exists()


def test_admin_sees_the_nav_entry_developer_does_not(login: Any, org_a: OrgFixture,
                                                     member: Any) -> None:
    assert b"Single sign-on" in login(org_a.owner).get("/o/acme/environments/").content
    dev = login(member("dev@acme.example", "developer"))
    assert b"Single sign-on" not in dev.get("/o/acme/environments/").content
    assert dev.get("/o/acme/sso/").status_code == 403


def test_setup_pages_offer_test_connection_once_an_idp_is_configured_on_or_off(
    login: Any, org_a: OrgFixture, idp_keys: Any
) -> None:
    from station.identity import services
    from tests.fixtures import SYSTEM

    client = login(org_a.owner)
    assert b"Test connection" not in client.get("/o/acme/sso/").content
    assert b"Test connection" not in client.get("/o/acme/sso/oidc/").content
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, entity_id=IDP_ENTITY,
                                sso_url=IDP_SSO, x509cert=idp_keys.cert_pem)
    page = client.get("/o/acme/sso/").content.decode()
    assert 'id="sso-test-form"' in page and "Test connection" in page
    assert 'action="/o/acme/sso/test/"' in page and "csrfmiddlewaretoken" in page
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, enabled=False)
    page = client.get("/o/acme/sso/").content.decode()
    # Tested before it is turned on: the button stays, saying so.
    assert 'id="sso-test-form"' in page and "test it before turning it on" in page
    with org_a.scope():
        services.configure_oidc(
            actor=SYSTEM, org=org_a.org, issuer="https://idp.acme.example",
            client_id="station", client_secret="s3cret",
            authorization_endpoint="https://idp.acme.example/authorize",
            token_endpoint="https://idp.acme.example/token",
            jwks_uri="https://idp.acme.example/jwks")
    page = client.get("/o/acme/sso/oidc/").content.decode()
    assert 'id="oidc-test-form"' in page and 'action="/o/acme/sso/oidc/test/"' in page
