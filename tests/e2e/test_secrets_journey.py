"""Secrets and variables in a real browser: add a secret in staging, rotate it, read its
versions, set a variable, and find every change in the audit log — the value never shown."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import CHROMIUM

pytestmark = [
    pytest.mark.e2e,
    # pytest-playwright's own base_url fixture triggers this deprecation, not our code.
    pytest.mark.filterwarnings("ignore::pytest.PytestRemovedIn10Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]

expect = pytest.importorskip("playwright.sync_api").expect

FIRST = "ghp_e2e_first_value_0b7c"
SECOND = "ghp_e2e_second_value_91ad"


def test_secret_rotation_and_variable_journey(page, live_server, console_org,
                                              screenshot) -> None:
    from station.vault.models import Secret, Variable

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/o/acme/environments/$"))

    page.get_by_role("link", name="Secrets", exact=True).click()
    page.get_by_role("navigation", name="Environments").get_by_role("link",
                                                                    name="Staging").click()
    expect(page.get_by_role("heading", name="No secrets in Staging")).to_be_visible()
    page.get_by_role("link", name="New secret").first.click()
    expect(page.get_by_label("Environment")).to_have_value("staging")

    # A bad name: the error sits on the field and the value is not sent back.
    page.get_by_label("Name").fill("github token")
    page.get_by_label("Value").fill(FIRST)
    page.get_by_role("button", name="Create secret").click()
    expect(page.locator(".field-error")).to_contain_text("starting with a letter")
    expect(page.get_by_label("Value")).to_have_value("")
    assert FIRST not in page.content()

    page.get_by_label("Name").fill("GITHUB_TOKEN")
    page.get_by_label("Value").fill(FIRST)
    page.get_by_role("button", name="Create secret").click()
    expect(page.locator(".flash-success")).to_contain_text("“GITHUB_TOKEN” created in staging")
    row = page.locator('tr[data-name="GITHUB_TOKEN"]')
    expect(row).to_contain_text("v1")

    row.get_by_role("link", name="Rotate").click()
    page.get_by_label("New value").fill(SECOND)
    page.get_by_role("button", name="Save new value").click()
    expect(page.locator(".flash-success")).to_contain_text("now has version 2")
    expect(page.locator('#versions tr[data-version="2"]')).to_contain_text("current")
    expect(page.locator('#versions tr[data-version="1"]')).to_be_visible()
    expect(page.get_by_label("New value")).to_have_value("")
    assert FIRST not in page.content() and SECOND not in page.content()
    screenshot(page, "06-secret-versions")

    page.get_by_role("link", name="Variables", exact=True).click()
    page.get_by_role("navigation", name="Environments").get_by_role("link",
                                                                    name="Staging").click()
    page.get_by_role("link", name="New variable").first.click()
    page.get_by_label("Name").fill("API_BASE_URL")
    page.get_by_label("Value").fill("https://staging.acme.example")
    page.get_by_role("button", name="Create variable").click()
    expect(page.locator(".flash-success")).to_contain_text("“API_BASE_URL” set in staging")
    expect(page.locator('tr[data-name="API_BASE_URL"]')).to_contain_text(
        "https://staging.acme.example")
    screenshot(page, "07-variables")

    page.get_by_role("link", name="Audit log").click()
    for action in ("secret.created", "secret.updated", "variable.set"):
        expect(page.locator(f'tr[data-action="{action}"]').first).to_be_visible()
    assert FIRST not in page.content() and SECOND not in page.content()
    screenshot(page, "08-audit-vault")

    with console_org.scope():
        secret = Secret.objects.get(name="GITHUB_TOKEN")
        assert secret.environment.slug == "staging" and secret.current_version == 2
        assert Variable.objects.get(name="API_BASE_URL").environment.slug == "staging"
