"""An org (acme) with a verified domain, a SAML connection to a test IdP whose key is made
here, and a helper that runs a browser through login → IdP → ACS → finish."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from station.identity import dns, services
from station.identity.acs import SESSION_KEY
from station.identity.models import SamlConnection, VerifiedDomain
from tests.fixtures import SYSTEM, OrgFixture
from tests.frontend.conftest import login  # noqa: F401 (the console pages' signed-in client)
from tests.identity.idp import Assertion, KeyPair, encode, make_keypair, sign

IDP_ENTITY = "https://idp.acme.example/saml"
IDP_SSO = "https://idp.acme.example/sso"
HOST = "station.test"  # python3-saml refuses single-label hosts such as "testserver"
BASE = f"http://{HOST}"


@pytest.fixture(autouse=True)
def _public_url(settings: Any) -> None:
    settings.PUBLIC_URL = BASE
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]


@pytest.fixture(autouse=True)
def _no_real_dns() -> Iterator[None]:
    dns.use_resolver(dns.StaticResolver())
    yield
    dns.use_resolver(None)


@pytest.fixture(scope="session")
def idp_keys() -> KeyPair:
    return make_keypair("Acme IdP")


@pytest.fixture(scope="session")
def other_keys() -> KeyPair:
    return make_keypair("Someone else")


def verify_domain_directly(fx: OrgFixture, domain: str) -> VerifiedDomain:
    """A verified domain without DNS (tests of domain verification use the resolver)."""
    with fx.scope():
        row = services.add_domain(actor=SYSTEM, org=fx.org, domain=domain)
        dns.use_resolver(dns.StaticResolver({domain: [row.txt_value]}))
        return services.verify_domain(actor=SYSTEM, domain=row)


@dataclass
class SamlSetup:
    fx: OrgFixture
    keys: KeyPair
    slug: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def acs(self) -> str:
        return f"{BASE}/accounts/saml/{self.slug}/acs/"

    @property
    def sp_entity(self) -> str:
        return f"{BASE}/accounts/saml/{self.slug}/metadata/"

    def connection(self) -> SamlConnection:
        with self.fx.scope():
            return SamlConnection.objects.get()

    def assertion(self, request_id: str | None, **overrides: Any) -> Assertion:
        values: dict[str, Any] = dict(
            issuer=IDP_ENTITY, audience=self.sp_entity, recipient=self.acs,
            destination=self.acs, name_id="00u-alice", in_response_to=request_id,
            email="alice@acme.example", groups=["engineering"])
        values.update(overrides)
        return Assertion(**values)

    def signed_response(self, a: Assertion, keys: KeyPair | None = None,
                        sha1: bool = False) -> str:
        return a.response_xml(sign(a.assertion_xml(), keys or self.keys, sha1=sha1))

    def start(self, client: Client, next_url: str | None = None) -> str:
        """GET the SP login; returns the AuthnRequest id the browser now waits on."""
        url = f"/accounts/saml/{self.slug}/login/" + (f"?next={next_url}" if next_url else "")
        response = client.get(url)
        assert response.status_code == 302, response.content
        assert response["Location"].startswith(IDP_SSO)
        return list(client.session[SESSION_KEY])[-1]

    def post(self, client: Client, xml: str, relay_state: str = "") -> Any:
        """POST a response to the ACS (as the IdP's auto-submitted form) and follow to finish."""
        response = client.post(f"/accounts/saml/{self.slug}/acs/",
                               {"SAMLResponse": encode(xml), "RelayState": relay_state})
        assert response.status_code == 302
        return client.get(response["Location"])

    def login(self, client: Client, **overrides: Any) -> Any:
        request_id = self.start(client)
        return self.post(client, self.signed_response(self.assertion(request_id, **overrides)))


@pytest.fixture
def saml_setup(org_a: OrgFixture, idp_keys: KeyPair) -> SamlSetup:
    verify_domain_directly(org_a, "acme.example")
    with org_a.scope():
        services.configure_saml(actor=SYSTEM, org=org_a.org, entity_id=IDP_ENTITY,
                                sso_url=IDP_SSO, x509cert=idp_keys.cert_pem)
        services.set_group_mapping(actor=SYSTEM, org=org_a.org, group="engineering",
                                   role="developer")
        services.set_group_mapping(actor=SYSTEM, org=org_a.org, group="platform-admins",
                                   role="admin")
    return SamlSetup(org_a, idp_keys, org_a.org.slug)


@pytest.fixture
def browser() -> Client:
    return Client(HTTP_HOST=HOST)  # browsers always send Host; SAML reads it


@pytest.fixture
def events(org_a: OrgFixture) -> Callable[[str], list[Any]]:
    from audit.models import AuditEvent

    def _events(action: str, fx: OrgFixture | None = None) -> list[Any]:
        with (fx or org_a).scope():
            return list(AuditEvent.objects.filter(action=action).order_by("sequence"))

    return _events


def now() -> Any:
    return timezone.now()
