"""The console's main journeys in a real browser (one screenshot each)."""

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


def sign_in(page, live_server, console_org) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/o/acme/environments/$"))


def test_sign_in_and_out(page, live_server, console_org, screenshot) -> None:
    page.goto(f"{live_server.url}/o/acme/members/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    expect(page.get_by_role("heading", name="Sign in to Station")).to_be_visible()
    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_label("Password").fill("wrong password entirely")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".form-errors")).to_contain_text("not correct")
    page.get_by_label("Password").fill(console_org.password)
    screenshot(page, "01-sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/o/acme/members/$"))
    expect(page.locator(".org-name")).to_have_text("Acme Robotics")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/|/$"))
    page.goto(f"{live_server.url}/o/acme/environments/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_role("button", name="Reset My Password").click()
    expect(page.locator(".bare-card")).to_contain_text("sent you an email")
    screenshot(page, "01b-password-reset-sent")


def test_create_environment(page, live_server, console_org, screenshot) -> None:
    sign_in(page, live_server, console_org)
    page.get_by_role("link", name="New environment").click()
    page.get_by_label("Name").fill("QA")
    page.get_by_label("Slug").fill("QA env")
    page.get_by_role("button", name="Create environment").click()
    expect(page.locator(".field-error")).to_contain_text("lowercase letters")
    page.get_by_label("Slug").fill("qa")
    page.get_by_role("button", name="Create environment").click()
    expect(page.locator(".flash-success")).to_contain_text("Environment “QA” created.")
    expect(page.locator("table")).to_contain_text("qa")
    screenshot(page, "02-environments")


def test_invite_member_and_change_role(page, live_server, console_org, screenshot) -> None:
    from tenants.models import Membership

    sign_in(page, live_server, console_org)
    page.get_by_role("link", name="Members").click()
    page.get_by_role("link", name="Invite member").click()
    page.get_by_label("Email").fill("dev@acme.example")
    page.get_by_label("Role").select_option("developer")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".flash-success")).to_contain_text("dev@acme.example was added")
    row = page.locator('tr[data-email="dev@acme.example"]')
    # The Save button is for browsers without JavaScript; htmx posts on change.
    expect(row.get_by_role("button", name="Save")).to_be_hidden()
    row.get_by_label("Role of dev@acme.example").select_option("operator")
    expect(page.locator(".flash-success")).to_contain_text("dev@acme.example is now operator.")
    with console_org.scope():
        assert Membership.objects.get(user__email="dev@acme.example").role == "operator"
    # The last owner cannot be demoted: the row shows why, and nothing changes.
    owner_row = page.locator('tr[data-email="owner@acme.example"]')
    owner_row.get_by_label("Role of owner@acme.example").select_option("viewer")
    expect(page.locator(".flash-error")).to_contain_text("The last owner cannot be demoted")
    owner_row = page.locator('tr[data-email="owner@acme.example"]')
    expect(owner_row.locator(".field-error")).to_contain_text("last owner")
    expect(owner_row.get_by_label("Role of owner@acme.example")).to_have_value("owner")
    screenshot(page, "03-members")


def test_api_key_shown_once_then_revoked(page, live_server, console_org, screenshot) -> None:
    sign_in(page, live_server, console_org)
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="No API keys yet")).to_be_visible()
    page.get_by_role("link", name="New API key").first.click()
    page.get_by_label("Name").fill("CI pipeline")
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Create key").click()
    field = page.get_by_label("Your new API key")
    plaintext = field.input_value()
    assert plaintext.startswith("stk_")
    expect(page.get_by_text("This is the only time it is shown")).to_be_visible()
    screenshot(page, "04-api-key-created")
    page.get_by_role("link", name=re.compile("back to API keys")).click()
    assert plaintext not in page.content()
    page.reload()
    assert plaintext not in page.content()
    row = page.locator('tr[data-name="CI pipeline"]')
    expect(row).to_contain_text("active")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("link", name="Revoke").click()
    expect(page.locator('tr[data-name="CI pipeline"]')).to_contain_text("revoked")
    expect(page.locator(".flash-success")).to_contain_text("revoked")
    screenshot(page, "05-api-keys")


def test_audit_log_shows_and_filters_actions(page, live_server, console_org, screenshot) -> None:
    from tenants import services
    from tenants.authz import Principal

    actor = Principal.for_user(console_org.owner)
    with console_org.scope():
        services.create_environment(actor=actor, org=console_org.org, slug="qa", name="QA")
        services.invite_member(actor=actor, org=console_org.org, email="dev@acme.example",
                               role="developer")
        services.create_api_key(actor=actor, org=console_org.org, name="CI", role="viewer")
    sign_in(page, live_server, console_org)
    page.get_by_role("link", name="Audit log").click()
    table = page.locator("#audit-events")
    for action in ("organization.created", "environment.created", "member.invited",
                   "apikey.created"):
        expect(table).to_contain_text(action)
    page.get_by_label("Action").select_option("member.invited")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"action=member.invited"))
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("dev@acme.example")
    page.get_by_role("link", name="Reset").click()
    page.get_by_label("Actor").fill("owner@acme.example")
    page.get_by_role("button", name="Filter").click()
    # The owner's three changes, and their own sign-in (identity events are audited too).
    expect(table.locator("tbody tr")).to_have_count(4)
    expect(table).to_contain_text("account.login_succeeded")
    screenshot(page, "06-audit-log")
