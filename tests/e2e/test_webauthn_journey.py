"""WebAuthn in a real browser, with Chromium's virtual authenticator (no hardware, no
network): add a security key, sign out, sign back in with the key."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import CHROMIUM

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::pytest.PytestRemovedIn10Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]

expect = pytest.importorskip("playwright.sync_api").expect


def _virtual_authenticator(page) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})


def test_add_a_security_key_and_sign_in_with_it(page, live_server, console_org,
                                               screenshot) -> None:
    from allauth.mfa.models import Authenticator

    base = live_server.url.replace("127.0.0.1", "localhost")
    _virtual_authenticator(page)
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/o/acme/environments/$"))

    page.goto(f"{base}/accounts/2fa/webauthn/add/")
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/webauthn/add/"))
    page.get_by_label("Name").fill("Laptop key")
    page.get_by_role("button", name="Add").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$|/accounts/2fa/webauthn/$"))
    screenshot(page, "webauthn-added")
    assert Authenticator.objects.filter(user=console_org.owner, type="webauthn").exists()

    page.get_by_role("link", name="Back to the console").click()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/$"))
    screenshot(page, "webauthn-authenticate")
    page.get_by_role("button", name="Use a security key").click()
    expect(page).to_have_url(re.compile(r"/o/acme/environments/$"))

    from audit.models import AuditEvent

    with console_org.scope():
        events = {(e.action, e.changes.get("type"), tuple(e.changes.get("methods", [])))
                  for e in AuditEvent.objects.filter(action__startswith="account.")}
    assert ("account.mfa_enrolled", "webauthn", ()) in events
    assert ("account.login_succeeded", None, ("password", "mfa:webauthn")) in events
