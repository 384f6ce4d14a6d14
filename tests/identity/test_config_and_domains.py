"""SAML configuration input, verified domains (DNS TXT through the injectable resolver) and
group mappings: clear field errors, nothing changed on bad input, every change audited."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from station.core.errors import Conflict, InvalidInput
from station.identity import dns, services
from station.identity.models import GroupRoleMapping, SamlConnection, VerifiedDomain
from tests.fixtures import SYSTEM, OrgFixture
from tests.identity.conftest import IDP_ENTITY, IDP_SSO, verify_domain_directly
from tests.identity.idp import make_keypair, metadata_xml

pytestmark = pytest.mark.django_db


def _count(fx: OrgFixture, action: str) -> int:
    with fx.scope():
        return AuditEvent.objects.filter(action=action).count()


def test_metadata_xml_configures_the_idp(org_a: OrgFixture, idp_keys: Any) -> None:
    with org_a.scope():
        connection = services.configure_saml(
            actor=SYSTEM, org=org_a.org,
            metadata_xml=metadata_xml(IDP_ENTITY, IDP_SSO, idp_keys.cert_body))
    assert (connection.idp_entity_id, connection.idp_sso_url) == (IDP_ENTITY, IDP_SSO)
    assert connection.idp_x509cert == idp_keys.cert_body
    # Safe defaults: strict settings, IdP-initiated off, not enforced.
    assert not connection.allow_idp_initiated and not connection.enforce_sso
    assert _count(org_a, "identity.saml_configured") == 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"metadata_xml": "<not-xml"}, "metadata_xml"),
    ({"metadata_xml": '<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'}, "metadata_xml"),
    ({"metadata_xml": metadata_xml(IDP_ENTITY, IDP_SSO, None)}, "metadata_xml"),  # unsigned
    ({"metadata_xml": metadata_xml(IDP_ENTITY, IDP_SSO, "bm90IGEgY2VydA==")}, "metadata_xml"),
    ({"metadata_xml": metadata_xml(IDP_ENTITY, "http://idp/sso", "x")}, "metadata_xml"),
    ({"entity_id": IDP_ENTITY, "sso_url": IDP_SSO, "x509cert": "garbage"}, "x509cert"),
    ({"entity_id": IDP_ENTITY, "sso_url": "ftp://idp", "x509cert": ""}, "sso_url"),
    ({"entity_id": "", "sso_url": IDP_SSO, "x509cert": ""}, "entity_id"),
])
def test_bad_idp_input_is_a_field_error_and_changes_nothing(
    org_a: OrgFixture, kwargs: dict[str, str], field: str
) -> None:
    with org_a.scope():
        with pytest.raises(InvalidInput) as info:
            services.configure_saml(actor=SYSTEM, org=org_a.org, **kwargs)
        assert field in (info.value.errors or {})
        assert not SamlConnection.objects.exists()
    assert _count(org_a, "identity.saml_configured") == 0


def test_an_expired_idp_certificate_is_refused_with_its_date(org_a: OrgFixture) -> None:
    expired = make_keypair("Old IdP key", expired=True)
    for kwargs, field in (
            ({"metadata_xml": metadata_xml(IDP_ENTITY, IDP_SSO, expired.cert_body)},
             "metadata_xml"),
            ({"entity_id": IDP_ENTITY, "sso_url": IDP_SSO, "x509cert": expired.cert_pem},
             "x509cert")):
        with org_a.scope():
            with pytest.raises(InvalidInput) as info:
                services.configure_saml(actor=SYSTEM, org=org_a.org, **kwargs)
            [message] = (info.value.errors or {})[field]
            assert "expired on" in message and "current signing certificate" in message
            assert not SamlConnection.objects.exists()
    assert _count(org_a, "identity.saml_configured") == 0


def test_settings_change_keeps_the_idp_and_validates_the_default_role(
    org_a: OrgFixture, idp_keys: Any
) -> None:
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, entity_id=IDP_ENTITY,
                                sso_url=IDP_SSO, x509cert=idp_keys.cert_pem)
        services.configure_saml(actor=SYSTEM, org=org_a.org, enforce_sso=True)
        connection = SamlConnection.objects.get()
        assert connection.enforce_sso and connection.idp_entity_id == IDP_ENTITY
        for bad in ("owner", "emperor"):
            with pytest.raises(InvalidInput):
                services.configure_saml(actor=SYSTEM, org=org_a.org, default_role=bad)
        assert SamlConnection.objects.get().default_role == "viewer"


def test_domain_is_verified_by_its_txt_record(org_a: OrgFixture) -> None:
    with org_a.scope():
        row = services.add_domain(actor=SYSTEM, org=org_a.org, domain=" Acme.Example. ")
        assert row.domain == "acme.example"
        dns.use_resolver(dns.StaticResolver({"acme.example": ["v=spf1 -all",
                                                              "station-verification=wrong"]}))
        with pytest.raises(InvalidInput) as info:
            services.verify_domain(actor=SYSTEM, domain=row)
        assert "station-verification=" in info.value.errors["domain"][0]
        assert VerifiedDomain.objects.get().verified_at is None
        dns.use_resolver(dns.StaticResolver({"acme.example": [row.txt_value]}))
        services.verify_domain(actor=SYSTEM, domain=row)
        assert VerifiedDomain.objects.get().verified_at is not None
    assert _count(org_a, "identity.domain_added") == 1
    assert _count(org_a, "identity.domain_verified") == 1


@pytest.mark.parametrize("bad", ["", "localhost", "https://acme.example/", "a..b", "-x.com",
                                 "acme.example/path", "x" * 64 + ".com"])
def test_malformed_domain_is_refused(org_a: OrgFixture, bad: str) -> None:
    with org_a.scope(), pytest.raises(InvalidInput):
        services.add_domain(actor=SYSTEM, org=org_a.org, domain=bad)


def test_domain_verified_by_another_org_is_refused(org_a: OrgFixture,
                                                   org_b: OrgFixture) -> None:
    verify_domain_directly(org_b, "acme.example")
    with org_a.scope():
        with pytest.raises(Conflict):
            services.add_domain(actor=SYSTEM, org=org_a.org, domain="acme.example")
        assert not VerifiedDomain.objects.exists()


def test_two_orgs_racing_for_one_domain_cannot_both_verify(org_a: OrgFixture,
                                                           org_b: OrgFixture) -> None:
    # Both claimed it before either verified; both publish their token.
    with org_a.scope():
        a = services.add_domain(actor=SYSTEM, org=org_a.org, domain="shared.example")
    with org_b.scope():
        b = services.add_domain(actor=SYSTEM, org=org_b.org, domain="shared.example")
    dns.use_resolver(dns.StaticResolver({"shared.example": [a.txt_value, b.txt_value]}))
    with org_a.scope():
        services.verify_domain(actor=SYSTEM, domain=a)
    with org_b.scope():
        with pytest.raises(Conflict):
            services.verify_domain(actor=SYSTEM, domain=b)
        assert VerifiedDomain.objects.get().verified_at is None


def test_group_mapping_to_an_unknown_role_or_owner_is_refused(org_a: OrgFixture) -> None:
    with org_a.scope():
        for role in ("emperor", "owner", ""):
            with pytest.raises(InvalidInput) as info:
                services.set_group_mapping(actor=SYSTEM, org=org_a.org, group="g", role=role)
            assert "role" in (info.value.errors or {})
        assert not GroupRoleMapping.objects.exists()
        services.set_group_mapping(actor=SYSTEM, org=org_a.org, group="g", role="viewer")
        services.set_group_mapping(actor=SYSTEM, org=org_a.org, group="g", role="operator")
        assert list(GroupRoleMapping.objects.values_list("group", "role")) == [("g", "operator")]


def test_writes_need_org_manage(org_a: OrgFixture, member: Any) -> None:
    from station.core.errors import AccessDenied
    from tenants.authz import Principal

    developer = Principal.for_user(member("dev@acme.example", "developer"))
    with org_a.scope():
        with pytest.raises(AccessDenied):
            services.add_domain(actor=developer, org=org_a.org, domain="acme.example")
        with pytest.raises(AccessDenied):
            services.set_group_mapping(actor=developer, org=org_a.org, group="g", role="viewer")


def test_dnspython_resolver_reads_txt_strings(monkeypatch: Any) -> None:
    import dns.resolver as dnsresolver

    class Rdata:
        strings = (b"station-verification=", b"abc")

    monkeypatch.setattr(dnsresolver, "resolve", lambda name, kind, lifetime: [Rdata()])
    assert dns.DnsPythonResolver().txt_records("x.example") == ["station-verification=abc"]

    def nx(*a: Any, **k: Any) -> Any:
        raise dnsresolver.NXDOMAIN()

    monkeypatch.setattr(dnsresolver, "resolve", nx)
    assert dns.DnsPythonResolver().txt_records("x.example") == []


# --- REST API ------------------------------------------------------------------------------------


def test_api_shows_sp_values_and_configures_saml(org_a: OrgFixture, idp_keys: Any) -> None:
    client = org_a.client("owner")
    body = client.get("/api/v1/sso/saml").json()
    assert body["configured"] is False
    assert body["sp"]["acs_url"] == "http://station.test/accounts/saml/acme/acs/"
    assert body["sp"]["entity_id"] == "http://station.test/accounts/saml/acme/metadata/"
    bad = client.put("/api/v1/sso/saml", {"entity_id": IDP_ENTITY, "sso_url": IDP_SSO,
                                          "x509cert": "nope"}, format="json")
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["x509cert"]
    ok = client.put("/api/v1/sso/saml", {"entity_id": IDP_ENTITY, "sso_url": IDP_SSO,
                                         "x509cert": idp_keys.cert_pem,
                                         "enforce_sso": True}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["configured"] and ok.json()["enforce_sso"]
    assert client.delete("/api/v1/sso/saml").status_code == 204
    assert client.delete("/api/v1/sso/saml").status_code == 404


def test_api_domain_challenge_and_verify(org_a: OrgFixture) -> None:
    client = org_a.client("admin")
    created = client.post("/api/v1/sso/domains", {"domain": "acme.example"}, format="json")
    assert created.status_code == 201
    txt = created.json()["txt_record"]
    assert txt.startswith("station-verification=")
    pk = created.json()["id"]
    assert client.post(f"/api/v1/sso/domains/{pk}/verify").status_code == 422
    dns.use_resolver(dns.StaticResolver({"acme.example": [txt]}))
    verified = client.post(f"/api/v1/sso/domains/{pk}/verify")
    assert verified.status_code == 200 and verified.json()["verified"] is True


def test_api_group_mapping_refuses_unknown_role(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    response = client.post("/api/v1/sso/group-mappings", {"group": "g", "role": "emperor"},
                           format="json")
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["role"]
    assert client.post("/api/v1/sso/group-mappings", {"group": "g", "role": "developer"},
                       format="json").status_code == 201


def test_group_mapping_and_default_role_accept_the_orgs_custom_roles(
        org_a: OrgFixture, org_b: OrgFixture) -> None:
    from tenants import services as tenant_services

    with org_b.scope():
        tenant_services.create_custom_role(actor=SYSTEM, org=org_b.org, name="globex-only",
                                           permissions=["runs.read"])
    with org_a.scope():
        tenant_services.create_custom_role(actor=SYSTEM, org=org_a.org, name="deployer",
                                           permissions=["agents.run", "runs.read"])
        services.set_group_mapping(actor=SYSTEM, org=org_a.org, group="deploy",
                                   role="deployer")
        # Another org's custom role is unknown here.
        with pytest.raises(InvalidInput):
            services.set_group_mapping(actor=SYSTEM, org=org_a.org, group="x",
                                       role="globex-only")
        assert list(GroupRoleMapping.objects.values_list("group", "role")) == [
            ("deploy", "deployer")]
