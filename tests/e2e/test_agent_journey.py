"""Create and publish an agent in a real browser, then run it: the editor refuses a bad
scenario with the field named, saves a good one, publishes v1, and a run of v1 started from
the console succeeds with the real MCP tool's answer in its timeline."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.e2e.test_run_journey import (  # noqa: F401  (fixtures)
    CLOCK_CALL,
    _run_status,
    _sign_in,
    _start_from_console,
    celery_worker,
    pytestmark,
    run_world,
)

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.mark.usefixtures("run_world", "celery_worker")
def test_create_publish_and_run_an_agent(page: Any, live_server: Any, console_org: Any,
                                         screenshot: Any) -> None:
    _sign_in(page, live_server, console_org)
    page.get_by_role("link", name="Agents", exact=True).click()
    page.get_by_role("navigation", name="Environments").get_by_role(
        "link", name="Development").click()
    page.locator("#new-agent").click()

    form = page.locator("#agent-form")
    form.get_by_label("Name").fill("paris-clock")
    form.get_by_label("Provider").select_option("scripted")
    form.get_by_label("Model").fill("scripted-1")
    form.get_by_label("Instructions").fill("Tell the time in Paris.")
    form.get_by_label("Allowed tools").select_option("clock/get_current_time")
    # A scenario turn without content or tool calls: refused, with the field named.
    form.get_by_label("Parameters (JSON)").fill('{"scenario": [{"nothing": true}]}')
    page.locator("#save-agent").click()
    expect(page.locator(".field-error").first).to_contain_text("scenario turn 1")
    screenshot(page, "30-agent-form-error")

    scenario = [CLOCK_CALL, {"content": "Paris time: {last_tool_result}"}]
    page.locator("#agent-form").get_by_label("Parameters (JSON)").fill(
        json.dumps({"scenario": scenario}))
    page.locator("#save-agent").click()
    expect(page.locator(".flash-success")).to_contain_text("paris-clock")
    expect(page).to_have_url(re.compile(r"/o/acme/agents/[0-9a-f-]{36}/$"))

    page.locator("#publish-form").get_by_placeholder("What changed").fill("first version")
    page.locator("#publish-agent").click()
    expect(page.locator("#versions")).to_contain_text("first version")
    expect(page.locator("#versions")).to_contain_text("1")
    screenshot(page, "31-agent-published")

    run_url = _start_from_console(page, "paris-clock", "{}")
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#run-output")).to_contain_text("Paris time:")
    expect(page.locator('#timeline [data-kind="tool"]')).to_contain_text("Europe/Paris")
    assert _run_status(console_org, run_url) == "succeeded"
    screenshot(page, "32-agent-run")
