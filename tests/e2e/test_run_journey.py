"""Runs in a real browser: start a run of a published scripted agent from the console and
watch its steps arrive live; cancel a running run from its page; approve a held tool call
from the approvals inbox and watch the run finish.

A real Celery worker (in a thread, `celery.contrib.testing.worker.start_worker`) executes the
runs from the in-memory broker, against the real `mcp-server-time`; the live server streams
the run page's server-sent events.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

CLOCK_CALL = {"tool_calls": [{"name": "clock__get_current_time",
                              "arguments": {"timezone": "Europe/Paris"}}]}


@pytest.fixture
def celery_worker(settings: Any, committed_db: None) -> Iterator[Any]:
    """A real worker thread consuming the in-memory broker (what `station worker` does)."""
    from celery.contrib.testing.worker import start_worker

    from station.celery import app
    from station.testing.celery import worker_thread_connections_closed

    settings.VAULT_REVEAL_ALLOWED = True  # this process plays the worker too
    settings.RUN_HEARTBEAT_SECONDS = 1
    settings.MCP_CALL_TIMEOUT_SECONDS = 10
    keys = ("broker_url", "result_backend", "task_always_eager")
    before = {key: app.conf.get(key) for key in keys}
    app.conf.update(broker_url="memory://", result_backend=None, task_always_eager=False)
    _forget_connections(app)
    with worker_thread_connections_closed(), start_worker(
            app, perform_ping_check=False, pool="solo", shutdown_timeout=10) as w:
        yield w
    app.conf.update(before)
    _forget_connections(app)


def _forget_connections(app: Any) -> None:
    """Producers are pooled on first use: forget them when the broker URL changes (kombu's
    own per-URL pools stay open for the next test using the same URL)."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def run_world(console_org: Any) -> Any:
    """In dev: the scripted model provider, the real time server (discovered), and agents
    published through the agents' services."""
    from station.providers import services as providers
    from station.tools import discovery
    from station.tools import services as tools
    from tenants import context
    from tenants.models import Environment
    from tests.fixtures import SYSTEM

    with console_org.scope():
        env = Environment.objects.get(slug="dev")
        providers.create_provider(actor=SYSTEM, environment=env, name="scripted",
                                  kind="scripted")
        clock = tools.create_mcp_server(actor=SYSTEM, environment=env, name="clock",
                                        transport="stdio", command=str(MCP_TIME))
    with context.org_context(console_org.org):
        assert discovery.discover(clock, actor=SYSTEM, purpose="e2e discovery").ok
    return env


def _publish(console_org: Any, env: Any, name: str, scenario: list[dict[str, Any]]) -> None:
    from station.agents import services as agents
    from tests.fixtures import SYSTEM

    with console_org.scope():
        agent = agents.create_agent(
            actor=SYSTEM, environment=env, name=name, provider="scripted", model="scripted-1",
            instructions="Tell the time.", parameters={"scenario": scenario},
            allowed_tools=["clock/get_current_time"], max_seconds=120)
        agents.publish_agent(actor=SYSTEM, agent=agent, note="e2e")


def _sign_in(page: Any, live_server: Any, console_org: Any) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(console_org.owner.email)
    page.get_by_label("Password").fill(console_org.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/o/acme/environments/$"))


def _start_from_console(page: Any, agent: str, data: str) -> str:
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_role("heading", name="No runs yet")).to_be_visible()
    page.get_by_role("link", name="Run agent").first.click()
    page.get_by_label("Agent").select_option(label=f"{agent} (v1)")
    page.get_by_label("Input (JSON)").fill(data)
    page.get_by_role("button", name="Start run").click()
    expect(page.locator(".flash-success")).to_contain_text(f"Run of “{agent}” v1 queued")
    expect(page).to_have_url(re.compile(r"/o/acme/runs/[0-9a-f-]{36}/$"))
    return str(page.url)


def _run_status(console_org: Any, url: str) -> str:
    from station.runs.models import Run

    run_id = url.rstrip("/").rsplit("/", 1)[-1]
    with console_org.scope():
        return Run.objects.get(pk=run_id).status


def test_start_a_run_and_watch_its_steps_arrive_live(page: Any, live_server: Any,
                                                      console_org: Any, run_world: Any,
                                                      celery_worker: Any,
                                                      screenshot: Any) -> None:
    _publish(console_org, run_world, "slow-clock", [
        {**CLOCK_CALL, "delay_seconds": 1},
        {"content": "In Paris: {last_tool_result}", "delay_seconds": 4}])
    _sign_in(page, live_server, console_org)

    # Bad input first: the field says what is wrong, nothing starts.
    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_role("link", name="Run agent").first.click()
    page.get_by_label("Input (JSON)").fill('{"message": ')
    page.get_by_role("button", name="Start run").click()
    expect(page.locator(".field-error")).to_contain_text("Not valid JSON")

    run_url = _start_from_console(page, "slow-clock",
                                  '{"message": "What time is it in Paris?"}')
    page.evaluate("window.__samePage = true")  # a reload would lose it
    expect(page.locator("#run-input")).to_contain_text("What time is it in Paris?")

    # The tool step appears while the final model call (4 s) is still running.
    tool_step = page.locator("#step-2")
    expect(tool_step).to_be_visible(timeout=30_000)
    assert _run_status(console_org, run_url) == "running"
    expect(page.locator("#run-status")).to_have_text("Running")
    expect(tool_step).to_contain_text("clock/get_current_time")
    expect(tool_step).to_contain_text("Europe/Paris")
    expect(page.locator("#live-indicator")).to_be_visible()
    screenshot(page, "20-run-live")

    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#step-3")).to_be_visible()
    expect(page.locator("#run-output")).to_contain_text("In Paris:")
    expect(page.locator("#run-steps")).to_have_text("3")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert page.evaluate("window.__samePage") is True
    screenshot(page, "21-run-succeeded")

    page.get_by_role("link", name="Runs", exact=True).click()
    row = page.locator("#runs tbody tr").first
    expect(row).to_contain_text("slow-clock")
    expect(row).to_contain_text("Succeeded")
    expect(row).to_contain_text("Console")


def test_cancel_a_running_run_from_its_page(page: Any, live_server: Any, console_org: Any,
                                            run_world: Any, celery_worker: Any,
                                            screenshot: Any) -> None:
    _publish(console_org, run_world, "long-clock",
             [{**CLOCK_CALL, "delay_seconds": 1.5}] * 8 + [{"content": "never"}])
    _sign_in(page, live_server, console_org)
    run_url = _start_from_console(page, "long-clock", "{}")
    expect(page.locator("#step-1")).to_be_visible(timeout=30_000)
    expect(page.locator("#run-status")).to_have_text("Running")

    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator(".flash-info")).to_contain_text("Cancel requested")
    expect(page.locator("#run-status")).to_have_text("Cancelled", timeout=30_000)
    expect(page.locator("#run-error")).to_contain_text("Cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert _run_status(console_org, run_url) == "cancelled"
    screenshot(page, "22-run-cancelled")


def test_approve_a_held_call_from_the_inbox_and_watch_the_run_finish(
        page: Any, live_server: Any, console_org: Any, run_world: Any, celery_worker: Any,
        screenshot: Any) -> None:
    from station.tools import policies
    from tests.fixtures import SYSTEM

    with console_org.scope():
        policies.set_policy(actor=SYSTEM, environment=run_world,
                            tool="clock/get_current_time", effect="require_approval")
    _publish(console_org, run_world, "careful-clock",
             [CLOCK_CALL, {"content": "Approved, and in Paris: {last_tool_result}"}])
    _sign_in(page, live_server, console_org)
    run_url = _start_from_console(page, "careful-clock", "{}")

    # The run pauses on the held call; the run page says so live.
    held = page.locator("#held-call")
    expect(held).to_be_visible(timeout=30_000)
    expect(page.locator("#run-status")).to_have_text("Waiting for approval")
    expect(held).to_contain_text("clock/get_current_time")

    page.reload()  # the nav badge counts on page load
    approvals = page.get_by_role("link", name=re.compile(r"^Approvals"))
    expect(approvals.locator(".nav-badge")).to_have_text("1")
    approvals.click()
    row = page.locator('#approvals tr[data-tool="clock/get_current_time"]')
    expect(row).to_contain_text("careful-clock")
    expect(row).to_contain_text("Europe/Paris")
    screenshot(page, "23-approvals-inbox")
    row.get_by_placeholder(re.compile("Reason")).fill("checked the arguments")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash-success")).to_contain_text(
        "Approved the call to clock/get_current_time")
    expect(page.get_by_role("heading", name="Nothing waiting for approval")).to_be_visible()
    expect(page.locator(".nav-badge")).to_have_count(0)

    page.goto(run_url)
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#run-output")).to_contain_text("Approved, and in Paris:")
    expect(page.locator('#timeline [data-kind="tool"]')).to_contain_text("Europe/Paris")
    assert _run_status(console_org, run_url) == "succeeded"
    screenshot(page, "24-run-approved")
