"""MCP servers in a real browser (issue 4's acceptance): add a secret in staging, reference it
from a stdio MCP server, discover its tools, then set the secret in prod, review the
promotion's changes, promote staging to prod, and find the server in prod.

Discovery runs as the console requests it: the Celery task, executed eagerly in the live
server's thread (standing in for a worker, hence VAULT_REVEAL_ALLOWED), against the real
`mcp-server-time` from the virtualenv.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM

MCP_TIME = Path(sys.prefix, "bin", "mcp-server-time").absolute()

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::pytest.PytestRemovedIn10Warning"),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
    pytest.mark.skipif(not MCP_TIME.exists(), reason=f"{MCP_TIME} not installed"),
]

expect = pytest.importorskip("playwright.sync_api").expect

STAGING_VALUE = "time-token-staging-4d1e"
PROD_VALUE = "time-token-prod-8a20"


@pytest.fixture
def worker_in_process(settings):
    from station.celery import app

    settings.VAULT_REVEAL_ALLOWED = True
    keys = ("task_always_eager", "task_eager_propagates")
    before = {key: app.conf.get(key) for key in keys}
    app.conf.update(dict.fromkeys(keys, True))
    yield
    app.conf.update(before)


def _add_secret(page, env_name: str, name: str, value: str) -> None:
    page.get_by_role("link", name="Secrets", exact=True).click()
    page.get_by_role("navigation", name="Environments").get_by_role("link",
                                                                    name=env_name).click()
    page.get_by_role("link", name="New secret").first.click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Value").fill(value)
    page.get_by_role("button", name="Create secret").click()
    expect(page.locator(".flash-success")).to_contain_text(f"“{name}” created")


def test_mcp_server_discovery_and_promotion_journey(page, live_server, console_org,
                                                    worker_in_process, screenshot) -> None:
    from station.tools.models import McpServer, Tool

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/o/acme/environments/$"))

    _add_secret(page, "Staging", "TIME_TOKEN", STAGING_VALUE)

    page.get_by_role("link", name="MCP servers", exact=True).click()
    page.get_by_role("navigation", name="Environments").get_by_role("link",
                                                                    name="Staging").click()
    expect(page.get_by_role("heading", name="No MCP servers in Staging")).to_be_visible()
    page.get_by_role("link", name="New MCP server").first.click()
    expect(page.locator("#reference-hint")).to_contain_text("${secret:TIME_TOKEN}")

    # A reference to a secret staging does not have: refused, next to the field.
    page.get_by_label("Name").fill("clock")
    page.get_by_label("Command").fill(str(MCP_TIME))
    page.get_by_label("Environment variables").fill("TOKEN=${secret:TIME_TOKN}")
    # Choosing http hides the stdio fields; back to stdio shows them again.
    page.get_by_role("radio", name=re.compile("Streamable HTTP")).check()
    expect(page.get_by_label("Command")).to_be_hidden()
    expect(page.get_by_label("URL")).to_be_visible()
    page.get_by_role("radio", name=re.compile("stdio")).check()
    expect(page.get_by_label("URL")).to_be_hidden()
    page.get_by_role("button", name="Add server").click()
    expect(page.locator(".field-error")).to_contain_text("'TIME_TOKN', which does not exist")

    page.get_by_label("Environment variables").fill("TOKEN=${secret:TIME_TOKEN}")
    page.get_by_role("button", name="Add server").click()
    expect(page.locator(".flash-success")).to_contain_text("“clock” added to staging")
    expect(page.get_by_role("heading", name="No tools discovered yet")).to_be_visible()
    expect(page.locator("#server-config")).to_contain_text("TOKEN=${secret:TIME_TOKEN}")

    page.get_by_role("button", name="Discover tools").click()
    expect(page.locator("#tools")).to_be_visible()
    tool_row = page.locator('#tools tr[data-name="get_current_time"]')
    expect(tool_row).to_contain_text("approved")
    expect(page.locator("#health")).to_contain_text("ok")
    assert STAGING_VALUE not in page.content()
    screenshot(page, "09-mcp-server-tools")

    page.get_by_role("link", name=re.compile("MCP servers · Staging")).click()
    row = page.locator('#mcp-servers tr[data-name="clock"]')
    expect(row).to_contain_text("stdio")
    expect(row).to_contain_text("ms")
    screenshot(page, "10-mcp-servers-staging")

    # The prod secret first: a server whose secret is missing in the target is not promoted.
    _add_secret(page, "Production", "TIME_TOKEN", PROD_VALUE)

    page.get_by_role("link", name="Promote", exact=True).click()
    page.get_by_label("From").select_option("staging")
    page.get_by_label("To").select_option("prod")
    page.get_by_role("button", name="Show changes").click()
    change = page.locator("tr", has=page.locator("code", has_text=re.compile("^clock$")))
    expect(change).to_contain_text("mcp_servers")
    expect(change).to_contain_text("add")
    screenshot(page, "11-promote-mcp-review")
    page.get_by_role("button", name=re.compile(r"^Promote \d+ change")).click()
    expect(page.locator(".flash-success")).to_contain_text("from Staging to Production")

    page.get_by_role("link", name="MCP servers", exact=True).click()
    page.get_by_role("navigation", name="Environments").get_by_role("link",
                                                                    name="Production").click()
    expect(page.locator('#mcp-servers tr[data-name="clock"]')).to_contain_text(str(MCP_TIME))
    screenshot(page, "12-mcp-servers-prod")
    assert PROD_VALUE not in page.content() and STAGING_VALUE not in page.content()

    with console_org.scope():
        prod = McpServer.objects.get(environment__slug="prod", name="clock")
        assert prod.env == {"TOKEN": "${secret:TIME_TOKEN}"}
        staging = McpServer.objects.get(environment__slug="staging", name="clock")
        assert Tool.objects.filter(server=staging, status=Tool.APPROVED).exists()
