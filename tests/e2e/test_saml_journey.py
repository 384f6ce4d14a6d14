"""SAML single sign-on in a real browser, against a test IdP on loopback that signs with a key
generated here (tests/identity/idp.py): the owner configures the IdP from its metadata URL,
verifies the email domain (DNS faked through station.identity.dns) and maps a group to a role;
a new person signs in with SSO, is bounced through the IdP and lands in the org's console; the
owner then sees the member, with the mapped role, and the audit events. Before that, the
owner's "Test connection" round trip shows what the IdP sent and what a sign-in would do,
and provisions nobody."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import CHROMIUM
from tests.identity.idp import IdpUser, LoopbackSamlIdp

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::pytest.PytestRemovedIn10Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]

expect = pytest.importorskip("playwright.sync_api").expect

NEWCOMER = IdpUser(name_id="00u-sam", email="sam@acme.example", groups=["engineering"])


@pytest.fixture
def idp() -> Iterator[LoopbackSamlIdp]:
    server = LoopbackSamlIdp(user=NEWCOMER)
    yield server
    server.close()


@pytest.fixture
def dns_records() -> Iterator[dict[str, list[str]]]:
    """TXT records the live server's resolver answers from; the test publishes into it."""
    from station.identity import dns

    records: dict[str, list[str]] = {}
    dns.use_resolver(dns.StaticResolver(records))
    yield records
    dns.use_resolver(None)


@pytest.fixture
def sso_settings(settings: Any, live_server: Any) -> None:
    # The SP entity id and ACS URL are built from STATION_PUBLIC_URL: it must be the address
    # the browser uses, or python3-saml's strict destination/audience checks refuse.
    settings.PUBLIC_URL = live_server.url
    # The IdP listens on 127.0.0.1 over http: lift the SSO fetch guard for this test only.
    settings.SSO_ALLOW_PRIVATE_NETWORKS = True


def _sign_in_with_password(page: Any, live_server: Any, console_org: Any) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/o/acme/environments/$"))


def test_owner_configures_saml_and_a_new_person_signs_in_through_the_idp(
        page: Any, live_server: Any, console_org: Any, idp: LoopbackSamlIdp,
        dns_records: dict[str, list[str]], sso_settings: None, screenshot: Any) -> None:
    # The owner sets up the IdP from its metadata URL.
    _sign_in_with_password(page, live_server, console_org)
    page.get_by_role("link", name="Single sign-on").click()
    expect(page).to_have_url(re.compile(r"/o/acme/sso/$"))
    expect(page.locator("#sp-values")).to_contain_text(
        f"{live_server.url}/accounts/saml/acme/acs/")
    page.get_by_label("IdP metadata URL").fill(idp.metadata_url)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash-success")).to_contain_text("Single sign-on settings saved.")
    expect(page.locator("#metadata-source")).to_contain_text(idp.metadata_url)
    expect(page.locator(".card").filter(has_text="Connected to")).to_contain_text(idp.entity_id)
    screenshot(page, "saml-01-idp-from-metadata-url")

    # ... proves the email domain with a DNS TXT record ...
    page.get_by_role("link", name="Domains").click()
    page.get_by_label("Domain").fill("acme.example")
    page.get_by_role("button", name="Add").click()
    expect(page.locator(".flash-success")).to_contain_text("Publish the TXT record")
    txt = page.locator("#domains code").inner_text().strip()
    assert txt.startswith("station-verification=")
    dns_records["acme.example"] = [txt]  # published
    page.get_by_role("button", name="Verify").click()
    expect(page.locator(".flash-success")).to_contain_text("acme.example is verified")
    expect(page.locator("#domains")).to_contain_text("Verified")
    screenshot(page, "saml-02-domain-verified")

    # ... maps the IdP's group to a role, and signs out.
    page.get_by_role("link", name="Group mapping").click()
    page.get_by_label("Group").fill("engineering")
    page.get_by_label("Role").select_option("developer")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash-success")).to_contain_text("Group mapping saved")
    screenshot(page, "saml-03-group-mapping")

    # Before anyone relies on it, the owner tests the connection: a round trip through the IdP
    # whose answer is checked like a sign-in, then shown, not acted on.
    page.get_by_role("link", name="Single sign-on").click()
    page.get_by_role("button", name="Test connection").click()
    expect(page).to_have_url(re.compile(r"/o/acme/sso/test/[0-9a-f-]+/$"))
    expect(page.locator("#sso-test-result")).to_have_attribute("data-ok", "true")
    expect(page.locator("#sso-test-groups")).to_contain_text("engineering")
    expect(page.locator("#sso-test-role")).to_have_text("developer")
    expect(page.locator("#sso-test-account")).to_contain_text(
        f"Create a new account {NEWCOMER.email}")
    expect(page.locator("#sso-test-domain")).to_contain_text("verified by this organization")
    expect(page.locator("body")).to_contain_text(console_org.owner.email)  # still the owner
    screenshot(page, "saml-04-connection-tested")
    page.get_by_role("link", name="Members").click()
    expect(page.locator(f'tr[data-email="{NEWCOMER.email}"]')).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/|/$"))

    # A new person, in a browser of their own, signs in with SSO.
    newcomer = page.context.browser.new_context(viewport={"width": 1360, "height": 860})
    try:
        other = newcomer.new_page()
        other.goto(f"{live_server.url}/accounts/login/")
        other.get_by_role("link", name="Sign in with SSO").click()
        other.get_by_label("Work email").fill(NEWCOMER.email)
        other.get_by_role("button", name="Continue").click()
        # Bounced through the IdP (its auto-submitting form) and back, signed in.
        expect(other).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/o/acme/"))
        expect(other.locator(".org-name")).to_have_text("Acme Robotics")
        expect(other.locator("body")).to_contain_text(NEWCOMER.email)
        screenshot(other, "saml-05-signed-in-through-the-idp")
    finally:
        newcomer.close()
    test_request, request = idp.authn_requests  # the owner's test, then the sign-in
    assert request["acs_url"] == f"{live_server.url}/accounts/saml/acme/acs/"
    assert test_request["id"] != request["id"]
    # Station read the metadata once, at the owner's save; the test and the sign-in did not
    # (the browser asks the IdP for its favicon, hence no exact list).
    assert idp.paths.count("/metadata") == 1 and idp.paths.count("/sso") == 2

    # The owner finds the new member with the mapped role, and the audit events.
    _sign_in_with_password(page, live_server, console_org)
    page.get_by_role("link", name="Members").click()
    row = page.locator(f'tr[data-email="{NEWCOMER.email}"]')
    expect(row.get_by_label(f"Role of {NEWCOMER.email}")).to_have_value("developer")
    screenshot(page, "saml-06-member-provisioned")
    page.get_by_role("link", name="Audit log").click()
    table = page.locator("#audit-events")
    for action in ("identity.saml_configured", "identity.domain_verified",
                   "identity.group_mapping_set", "identity.sso_test_succeeded",
                   "identity.sso_provisioned",
                   "identity.sso_login_succeeded"):
        expect(table.locator(f'tr[data-action="{action}"]').first).to_be_visible()
    expect(table.locator('tr[data-action="identity.sso_login_succeeded"]')).to_contain_text(
        NEWCOMER.email)
    expect(table.locator('tr[data-action="identity.sso_login_failed"]')).to_have_count(0)
    screenshot(page, "saml-07-audit-log")
