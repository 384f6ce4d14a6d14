"""MFA in a real browser: an org that requires MFA sends its owner to enrol at sign-in; they
add an authenticator app (the code computed from the secret the page shows, with allauth's
own TOTP algorithm), sign out, sign back in with a fresh code, and find their session and
the audit events."""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import CHROMIUM

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::pytest.PytestRemovedIn10Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]

expect = pytest.importorskip("playwright.sync_api").expect


def _code(secret: str) -> str:
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def _next_window() -> None:
    """allauth refuses a code twice in one 30 s window: wait for the next one."""
    time.sleep(30 - time.time() % 30 + 0.5)


def test_enrol_totp_sign_out_and_sign_in_with_a_code(page, live_server, console_org,
                                                     screenshot) -> None:
    with console_org.scope():
        console_org.org.require_mfa = True
        console_org.org.save(update_fields=["require_mfa"])

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Sign in").click()

    # The org requires MFA: allauth first asks for the password again, then the app.
    expect(page).to_have_url(re.compile(r"/accounts/reauthenticate/"))
    expect(page.locator(".flash-warning")).to_contain_text(
        "Acme Robotics requires two-factor authentication")
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/totp/activate/$"))
    expect(page.locator("img.qr-code")).to_be_visible()
    screenshot(page, "mfa-activate")
    secret = page.locator("#authenticator_secret").input_value()
    page.get_by_label("Authenticator code").fill(_code(secret))
    page.get_by_role("button", name="Activate").click()

    # Recovery codes are shown once enrolled.
    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$"))
    screenshot(page, "mfa-recovery-codes")
    page.get_by_role("link", name="Back to the console").click()
    expect(page).to_have_url(re.compile(r"/o/acme/environments/$"))

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))

    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/$"))
    expect(page.locator("body")).to_contain_text("recovery codes")
    screenshot(page, "mfa-authenticate")
    _next_window()
    page.get_by_label("Code").fill(_code(secret))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/o/acme/environments/$"))

    page.get_by_role("link", name="Sessions").click()
    expect(page.locator("#sessions")).to_contain_text("this browser")
    screenshot(page, "account-sessions")

    page.goto(f"{live_server.url}/o/acme/audit/")
    for action in ("account.mfa_enrolled", "account.logout", "account.login_succeeded"):
        expect(page.locator("body")).to_contain_text(action)
