"""Run triggers in the console: schedules, inbound and outbound webhooks per environment,
inline service errors, signing secrets shown once (and a curl recipe that really signs),
the delivery log, the agent page's Triggers section, permissions and other orgs' ids."""

from __future__ import annotations

import re
import subprocess
from html import unescape
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from station.agents.models import Agent
from station.runs.models import Run
from station.triggers import secrets
from station.triggers import services as triggers
from station.triggers.models import (
    DeliveryAttempt,
    InboundWebhook,
    OutboundWebhook,
    Schedule,
    WebhookDelivery,
)
from tenants import services as tenant_services
from tenants.models import Environment, Membership
from tests.fixtures import SYSTEM, OrgFixture, seed_org
from tests.frontend.test_access import DUMMY_ID, ORG_ROUTES
from tests.triggers.conftest import make_agent

pytestmark = pytest.mark.django_db

SECRET_RE = re.compile(r"whsec_[A-Za-z0-9_-]{20,}")


def url(name: str, fx: OrgFixture, *args: object) -> str:
    return reverse(f"console:{name}", args=[fx.org.slug, *args])


def text(response: Any) -> str:
    return response.content.decode()


def shown_secret(response: Any) -> str:
    match = re.search(r'id="signing-secret"[^>]*value="(whsec_[^"]+)"', text(response))
    assert match, "no signing secret on the page"
    return match.group(1)


def field_error(page: str, message: str) -> bool:
    return f'<p class="field-error" role="alert">{message}' in unescape(page)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[Any]:
    """Runs started by a signed inbound call are recorded, not sent to a broker."""
    from station.runs import lifecycle

    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent: list[Any] = []
    monkeypatch.setattr(lifecycle, "_send", lambda org, run: sent.append(run))
    return sent


@pytest.fixture
def agent(org_a: OrgFixture) -> Agent:
    return make_agent(org_a, env="staging", input_schema={
        "type": "object", "required": ["question"],
        "properties": {"question": {"type": "string"}}})


def _schedule(fx: OrgFixture, agent: Agent, **kw: Any) -> Schedule:
    with fx.scope():
        return triggers.create_schedule(actor=SYSTEM, agent=agent, **{
            "cron_expression": "0 9 * * 1-5", "timezone_name": "Europe/Paris", **kw})


def _inbound(fx: OrgFixture, agent: Agent, **kw: Any) -> tuple[InboundWebhook, str]:
    with fx.scope():
        return triggers.create_inbound_webhook(actor=SYSTEM, agent=agent, **kw)


def _outbound(fx: OrgFixture, agent: Agent | None, env: str = "staging",
              **kw: Any) -> tuple[OutboundWebhook, str]:
    with fx.scope():
        return triggers.create_outbound_webhook(
            actor=SYSTEM, environment=Environment.objects.get(slug=env), agent=agent,
            **{"url": "https://hooks.example.com/station", **kw})


def _actions(fx: OrgFixture) -> list[str]:
    with fx.scope():
        return list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))


# --- the overview ---------------------------------------------------------------------------


def test_nav_and_list_per_environment(login, org_a, agent) -> None:
    other = make_agent(org_a, name="prod-bot", env="prod")
    schedule = _schedule(org_a, agent, name="weekday-report")
    _schedule(org_a, other, cron_expression="*/5 * * * *")
    hook, _ = _inbound(org_a, agent, name="ticketing")
    _outbound(org_a, None, name="all-runs")
    client = login(org_a.owner)
    page = text(client.get(url("triggers", org_a) + "?env=staging"))
    assert ">Triggers</a>" in page
    assert f'data-id="{schedule.pk}"' in page and "weekday-report" in page
    assert "0 9 * * 1-5" in page and "Europe/Paris" in page and "At 09:00 AM" in page
    with org_a.scope():
        next_run = Schedule.objects.get(pk=schedule.pk).next_run_at
    assert next_run is not None
    # Next fire time, on the schedule's wall clock (09:00 Paris) and in UTC.
    assert f"{next_run:%b} {next_run.day}, 09:00" in page and " UTC" in page
    assert "never" in page and "prod-bot" not in page and "*/5" not in page
    assert "ticketing" in page and f"/hooks/{hook.pk}" in page
    assert "all-runs" in page and "every agent in Staging" in page
    for control in ("new-schedule", "new-inbound", "new-outbound"):
        assert f'id="{control}"' in page
    prod = text(client.get(url("triggers", org_a) + "?env=prod"))
    assert "prod-bot" in prod and "weekday-report" not in prod


def test_agent_filter_and_agent_page_section(login, org_a, agent) -> None:
    other = make_agent(org_a, name="other-bot", env="staging")
    _schedule(org_a, agent, name="mine")
    _schedule(org_a, other, name="theirs")
    _outbound(org_a, None, name="env-wide")
    _outbound(org_a, other, name="other-only")
    client = login(org_a.owner)
    detail = text(client.get(url("agents-detail", org_a, agent.pk)))
    assert 'id="agent-triggers"' in detail
    assert "1 schedule (1 enabled) · 0 inbound webhooks · 1 outbound webhook" in detail
    link = f"{url('triggers', org_a)}?env=staging&amp;agent={agent.pk}"
    assert link in detail
    page = text(client.get(unescape(link)))
    assert "Triggers of clock-bot" in page
    assert "mine" in page and "theirs" not in page
    assert "env-wide" in page and "other-only" not in page
    # New triggers from the filtered page preselect the agent.
    new = text(client.get(url("triggers-schedules-new", org_a)
                          + f"?env=staging&agent={agent.pk}"))
    assert f'<option value="{agent.pk}" selected>' in new


def test_empty_environment_says_to_create_an_agent(login, org_a) -> None:
    page = text(login(org_a.owner).get(url("triggers", org_a) + "?env=dev"))
    assert 'id="no-agents"' in page and 'id="new-schedule"' not in page


# --- schedules ------------------------------------------------------------------------------


def _schedule_form(target: Agent, /, **overrides: str) -> dict[str, str]:
    return {"agent": str(target.pk), "name": "", "cron": "0 9 * * 1-5",
            "timezone": "Europe/Paris", "input": '{"question": "What changed?"}',
            "enabled": "on", **overrides}


def test_schedule_create_with_inline_errors_then_edit_and_delete(login, org_a, agent) -> None:
    client = login(org_a.owner)
    new = url("triggers-schedules-new", org_a) + "?env=staging"
    page = text(client.get(new))
    assert '<datalist id="tz-names">' in page and '<option value="Europe/Paris">' in page

    bad = client.post(new, _schedule_form(agent, cron="61 * * *", timezone="Mars/Olympus"))
    assert bad.status_code == 200
    body = text(bad)
    assert field_error(body, "Expected five fields (minute hour day-of-month month "
                             "day-of-week), got 4")
    assert field_error(body, "Unknown time zone 'Mars/Olympus'")
    bad = text(client.post(new, _schedule_form(agent, cron="61 * * * *", input="[1, 2]")))
    assert field_error(bad, "Not a valid cron expression")
    assert field_error(bad, "A JSON object (the run input).")
    bad = text(client.post(new, _schedule_form(agent, input="{nope")))
    assert field_error(bad, "Not valid JSON (line 1, column 2)")
    assert 'value="Europe/Paris"' in bad  # what was typed stays in the form
    bad = text(client.post(new, _schedule_form(agent, agent="")))
    assert field_error(bad, "Choose the agent to run.")
    with org_a.scope():
        assert not Schedule.objects.exists()

    ok = client.post(new, _schedule_form(agent, name="weekday-report"))
    assert ok.status_code == 302 and ok["Location"].endswith("?env=staging")
    with org_a.scope():
        schedule = Schedule.objects.get()
        assert (schedule.agent_id, schedule.cron, schedule.timezone, schedule.input,
                schedule.enabled) == (agent.pk, "0 9 * * 1-5", "Europe/Paris",
                                      {"question": "What changed?"}, True)
    flash = text(client.get(ok["Location"]))
    assert "Schedule for “clock-bot” created: At 09:00 AM, Monday through Friday" in flash

    edit = url("triggers-schedules-edit", org_a, schedule.pk)
    form = text(client.get(edit))
    assert 'value="0 9 * * 1-5"' in form and "&quot;question&quot;: &quot;What changed?" in form
    assert "A trigger stays with its agent" in form
    bad = text(client.post(edit, _schedule_form(agent, cron="0 25 * * *")))
    assert field_error(bad, "Not a valid cron expression")
    client.post(edit, _schedule_form(agent, cron="30 7 * * *", timezone="UTC", input="",
                                     agent="ignored", enabled=""))
    with org_a.scope():
        schedule = Schedule.objects.get()
        assert (schedule.cron, schedule.timezone, schedule.input, schedule.enabled,
                schedule.agent_id, schedule.next_run_at) == ("30 7 * * *", "UTC", {}, False,
                                                             agent.pk, None)
    listing = text(client.get(url("triggers", org_a) + "?env=staging"))
    assert "30 7 * * *" in listing and ">disabled<" in listing

    delete = url("triggers-schedules-delete", org_a, schedule.pk)
    assert "Delete the schedule “30 7 * * * (UTC)” of clock-bot?" in text(client.get(delete))
    with org_a.scope():
        assert Schedule.objects.exists()  # the GET only asks
    assert client.post(delete).status_code == 302
    with org_a.scope():
        assert not Schedule.objects.exists()
    assert _actions(org_a)[-3:] == ["schedule.created", "schedule.updated", "schedule.deleted"]


def test_last_run_links_to_the_run_and_last_error_is_shown(login, org_a, agent) -> None:
    schedule = _schedule(org_a, agent)
    run_id = "7d1c4c52-5d0e-4b8c-9d7e-1c2b3a4f5e6d"
    with org_a.scope():
        Schedule.objects.filter(pk=schedule.pk).update(
            last_run_at=timezone.now(), last_run_id=run_id,
            last_error="The agent has no published version.")
    page = text(login(org_a.owner).get(url("triggers", org_a) + "?env=staging"))
    assert f'href="{url("runs-detail", org_a, run_id)}" class="last-run"' in page
    assert "last tick failed" in page and "The agent has no published version." in page


# --- inbound webhooks -----------------------------------------------------------------------


def test_inbound_secret_is_shown_once_and_its_curl_recipe_signs(login, org_a, agent,
                                                                 no_broker) -> None:
    client = login(org_a.owner)
    new = url("triggers-inbound-new", org_a) + "?env=staging"
    assert field_error(text(client.post(new, {"agent": "", "name": "x"})),
                       "Choose the agent its calls run.")
    created = client.post(new, {"agent": str(agent.pk), "name": "ticketing",
                                "enabled": "on"})
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    secret = shown_secret(created)
    with org_a.scope():
        hook = InboundWebhook.objects.get()
        assert secrets.reveal(hook) == secret and hook.name == "ticketing"
    page = text(created)
    assert "This is the only time it is shown" in page
    assert f"http://testserver/hooks/{hook.pk}" in page

    # The copyable recipe, run as written (with curl swapped for an echo), signs correctly.
    match = re.search(r'<textarea id="curl-example"[^>]*>(.*?)</textarea>', page, re.S)
    assert match
    recipe = unescape(match.group(1))
    assert f"SECRET='{secret}'" in recipe and "BODY='{\"question\": \"…\"}'" in recipe
    script = recipe.split("curl ", 1)[0] + 'printf "%s\\n%s\\n%s" "$TS" "$SIG" "$BODY"\n'
    ts, sig, body = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                   check=True).stdout.split("\n")
    assert sig == secrets.sign(secret, ts, body.encode())
    accepted = client.post(f"/hooks/{hook.pk}", data=body.encode(),
                           content_type="application/json", HTTP_STATION_TIMESTAMP=ts,
                           HTTP_STATION_SIGNATURE=f"v1={sig}")
    assert accepted.status_code == 202, accepted.content
    with org_a.scope():
        assert Run.objects.get().input == {"question": "…"}

    # Never again: not on the list, the detail page or the rotate confirmation.
    for page_url in (url("triggers", org_a) + "?env=staging",
                     url("triggers-inbound-detail", org_a, hook.pk),
                     url("triggers-inbound-rotate", org_a, hook.pk)):
        again = text(client.get(page_url))
        assert secret not in again and not SECRET_RE.search(again)
    detail = text(client.get(url("triggers-inbound-detail", org_a, hook.pk)))
    assert f"whsec_…{secret[-4:]}" in detail and "SECRET=&#x27;whsec_…&#x27;" in detail
    assert "Last accepted call" in detail and "never" not in detail.split("Created")[0]


def test_inbound_rotate_enable_disable_and_delete(login, org_a, agent) -> None:
    hook, old = _inbound(org_a, agent, name="ticketing")
    client = login(org_a.owner)
    rotate = url("triggers-inbound-rotate", org_a, hook.pk)
    confirm = text(client.get(rotate))
    assert "Rotate the signing secret of “ticketing”?" in confirm and old[-4:] in confirm
    rotated = client.post(rotate)
    new = shown_secret(rotated)
    assert new != old and "The previous secret no longer works." in text(rotated)
    assert "no-store" in rotated["Cache-Control"]
    with org_a.scope():
        assert secrets.reveal(InboundWebhook.objects.get(pk=hook.pk)) == new
    detail_url = url("triggers-inbound-detail", org_a, hook.pk)
    assert new not in text(client.get(detail_url))

    toggle = url("triggers-inbound-enabled", org_a, hook.pk)
    response = client.post(toggle, {"enabled": "0"}, follow=True)
    assert "disabled: calls get 403" in text(response) and 'id="disabled-badge"' in text(
        response)
    with org_a.scope():
        assert InboundWebhook.objects.get(pk=hook.pk).enabled is False
    assert ">Enable</button>" in text(client.get(detail_url))
    client.post(toggle, {"enabled": "1"})
    with org_a.scope():
        assert InboundWebhook.objects.get(pk=hook.pk).enabled is True

    delete = url("triggers-inbound-delete", org_a, hook.pk)
    assert "Delete the inbound webhook “ticketing”?" in text(client.get(delete))
    client.post(delete)
    with org_a.scope():
        assert not InboundWebhook.objects.exists()
    assert _actions(org_a)[-5:] == ["webhook.created", "webhook.secret_rotated",
                                    "webhook.updated", "webhook.updated", "webhook.deleted"]


# --- outbound webhooks ----------------------------------------------------------------------


def _outbound_form(**overrides: Any) -> dict[str, Any]:
    return {"name": "ops", "url": "https://hooks.example.com/station", "agent": "",
            "events": ["run.failed", "run.timed_out"], "enabled": "on", **overrides}


def test_outbound_create_with_inline_errors_edit_rotate_delete(login, org_a, agent) -> None:
    client = login(org_a.owner)
    new = url("triggers-outbound-new", org_a) + "?env=staging"
    form = text(client.get(new))
    assert "Every agent in Staging" in form and 'value="run.succeeded"' in form
    bad = text(client.post(new, _outbound_form(url="ftp://files.example.com")))
    assert field_error(bad, "Give the receiver's http(s) URL")
    bad = text(client.post(new, _outbound_form(events=[])))
    assert field_error(bad, "A non-empty list of: run.succeeded")
    bad = text(client.post(new, _outbound_form(url="https://user:pw@hooks.example.com/")))
    assert field_error(bad, "No credentials in the URL")
    with org_a.scope():
        assert not OutboundWebhook.objects.exists()

    created = client.post(new, _outbound_form())
    secret = shown_secret(created)
    assert 'id="verify-example"' in text(created) and "every agent in Staging" in text(created)
    with org_a.scope():
        hook = OutboundWebhook.objects.get()
        assert (hook.agent_id, hook.events, secrets.reveal(hook)) == (
            None, ["run.failed", "run.timed_out"], secret)

    detail = url("triggers-outbound-detail", org_a, hook.pk)
    edit = url("triggers-outbound-edit", org_a, hook.pk)
    for page_url in (detail, edit, url("triggers", org_a) + "?env=staging"):
        again = text(client.get(page_url))
        assert secret not in again and not SECRET_RE.search(again)

    bad = text(client.post(edit, _outbound_form(events=[])))
    assert field_error(bad, "A non-empty list of")
    saved = client.post(edit, _outbound_form(url="https://hooks.example.com/v2",
                                             events=["run.succeeded"], agent=str(agent.pk)))
    assert saved.status_code == 302 and saved["Location"] == detail
    with org_a.scope():
        hook = OutboundWebhook.objects.get()
        # The scope is fixed at creation: a posted agent is ignored.
        assert (hook.url, hook.events, hook.agent_id) == ("https://hooks.example.com/v2",
                                                          ["run.succeeded"], None)

    rotated = client.post(url("triggers-outbound-rotate", org_a, hook.pk))
    new_secret = shown_secret(rotated)
    assert new_secret != secret
    assert new_secret not in text(client.get(detail))

    client.post(url("triggers-outbound-delete", org_a, hook.pk))
    with org_a.scope():
        assert not OutboundWebhook.objects.exists()


def test_outbound_for_one_agent(login, org_a, agent) -> None:
    client = login(org_a.owner)
    client.post(url("triggers-outbound-new", org_a) + "?env=staging",
                _outbound_form(agent=str(agent.pk)))
    with org_a.scope():
        assert OutboundWebhook.objects.get().agent_id == agent.pk
    other = make_agent(org_a, name="prod-bot", env="prod")
    # An agent of another environment is not a choice here.
    bad = text(client.post(url("triggers-outbound-new", org_a) + "?env=staging",
                           _outbound_form(agent=str(other.pk))))
    assert "Select a valid choice" in bad


def test_delivery_log(login, org_a, agent) -> None:
    hook, _ = _outbound(org_a, agent, name="ops")
    soon = timezone.now() + timezone.timedelta(minutes=5)
    with org_a.scope():
        run = Run.objects.create(organization=org_a.org, agent=agent,
                                 environment=agent.environment,
                                 version=agent.versions.get(), status=Run.FAILED)
        failing = WebhookDelivery.objects.create(
            webhook=hook, run=run, event="run.failed", status=WebhookDelivery.PENDING,
            attempts=2, response_code=503, error="HTTP 503 from receiver",
            next_attempt_at=soon)
        DeliveryAttempt.objects.create(delivery=failing, number=1, response_code=503,
                                       error="HTTP 503 from receiver", duration_ms=41)
        WebhookDelivery.objects.create(webhook=hook, event="run.succeeded",
                                       status=WebhookDelivery.DELIVERED, attempts=1,
                                       response_code=200, delivered_at=timezone.now())
    client = login(org_a.owner)
    page = text(client.get(url("triggers-outbound-detail", org_a, hook.pk)))
    assert page.count('data-status="') == 2
    assert 'data-status="pending"' in page and 'data-status="delivered"' in page
    assert "HTTP 503 from receiver" in page and "<code>503</code>" in page
    assert f"{soon:%b} {soon.day}, {soon:%H:%M:%S} UTC" in page and "41 ms" in page
    listing = text(client.get(url("triggers", org_a) + "?env=staging"))
    assert "1 pending" in listing


def test_delivery_log_pages(login, org_a, agent) -> None:
    hook, _ = _outbound(org_a, agent)
    with org_a.scope():
        WebhookDelivery.objects.bulk_create([
            WebhookDelivery(organization=org_a.org, webhook=hook, event="run.succeeded",
                            error=f"error number {n}") for n in range(30)])
    client = login(org_a.owner)
    detail = url("triggers-outbound-detail", org_a, hook.pk)
    first, second = text(client.get(detail)), text(client.get(detail + "?page=2"))
    assert first.count('data-status="') == 25 and second.count('data-status="') == 5
    assert "Page 1 of 2 · 30 deliveries" in first


# --- permissions and tenancy ----------------------------------------------------------------


def test_viewer_sees_triggers_without_controls_and_cannot_change(login, org_a, agent,
                                                                 member) -> None:
    schedule = _schedule(org_a, agent)
    hook, secret = _inbound(org_a, agent)
    outbound, _ = _outbound(org_a, agent)
    client = login(member("viewer@acme.example", "viewer"))
    page = text(client.get(url("triggers", org_a) + "?env=staging"))
    assert f'data-id="{schedule.pk}"' in page
    for control in ('id="new-schedule"', 'id="new-inbound"', 'id="new-outbound"', ">Edit<",
                    ">Delete<"):
        assert control not in page
    for name, obj in (("triggers-inbound-detail", hook),
                      ("triggers-outbound-detail", outbound)):
        detail = text(client.get(url(name, org_a, obj.pk)))
        assert "Rotate secret" not in detail and ">Delete<" not in detail
    assert 'id="agent-triggers"' in text(client.get(url("agents-detail", org_a, agent.pk)))
    for name, args in (("triggers-schedules-new", ()), ("triggers-inbound-rotate", (hook.pk,)),
                       ("triggers-schedules-delete", (schedule.pk,)),
                       ("triggers-outbound-edit", (outbound.pk,))):
        assert client.post(url(name, org_a, *args)).status_code == 403
    with org_a.scope():
        assert secrets.reveal(InboundWebhook.objects.get()) == secret
        assert Schedule.objects.exists()


def test_operator_runs_agents_but_cannot_manage_triggers(login, org_a, agent, member) -> None:
    client = login(member("operator@acme.example", "operator"))
    response = client.post(url("triggers-schedules-new", org_a) + "?env=staging",
                           _schedule_form(agent))
    assert response.status_code == 403 and b"agents.write" in response.content


def test_member_narrowed_in_an_environment_is_refused_there(login, org_a, agent,
                                                            member) -> None:
    hook, _ = _inbound(org_a, agent)
    user = member("dev@acme.example", "developer")
    with org_a.scope():
        tenant_services.set_environment_role(
            actor=SYSTEM, membership=Membership.objects.get(user=user),
            environment=Environment.objects.get(slug="staging"), role="viewer")
    client = login(user)
    page = text(client.get(url("triggers", org_a) + "?env=staging"))
    assert "/hooks/" in page and 'id="new-inbound"' not in page
    refused = client.post(url("triggers-inbound-rotate", org_a, hook.pk))
    assert refused.status_code == 403 and b"agents.write" in refused.content
    assert client.post(url("triggers-inbound-enabled", org_a, hook.pk),
                       {"enabled": "0"}).status_code == 403
    # Creating picks among the environments where the member may: never staging.
    new = text(client.get(url("triggers-inbound-new", org_a) + "?env=staging"))
    assert "In Development." in new
    with org_a.scope():
        assert InboundWebhook.objects.get().enabled is True


TRIGGER_ROUTES = sorted(name for name, pattern in ORG_ROUTES
                        if name.startswith("triggers-") and pattern.pattern.converters)


def test_trigger_routes_with_ids_are_covered() -> None:
    assert len(TRIGGER_ROUTES) == 10


@pytest.mark.parametrize("method", ["get", "post"])
def test_other_orgs_trigger_ids_are_404(login, org_a, org_b, method: str) -> None:
    seeded = seed_org(org_b)
    schedule = seeded.objects[Schedule][0].pk
    inbound = seeded.objects[InboundWebhook][0].pk
    outbound = seeded.objects[OutboundWebhook][0].pk
    client = login(org_a.owner)
    for name in TRIGGER_ROUTES:
        converters = dict(ORG_ROUTES)[name].pattern.converters
        (kwarg,) = converters
        value = (schedule if kwarg == "schedule_id"
                 else inbound if "-inbound-" in name else outbound)
        response = getattr(client, method)(
            reverse(f"console:{name}", kwargs={"org_slug": org_a.org.slug, kwarg: value}))
        missing = getattr(client, method)(
            reverse(f"console:{name}", kwargs={"org_slug": org_a.org.slug, kwarg: DUMMY_ID}))
        assert response.status_code == missing.status_code == 404, name
    # Foreign objects are untouched, and nothing of org B shows in org A's lists.
    with org_b.scope():
        assert Schedule.objects.count() == 1 and InboundWebhook.objects.count() == 1
        assert OutboundWebhook.objects.count() == 1
    for env in ("dev", "staging", "prod", "qa"):
        page = text(client.get(url("triggers", org_a) + f"?env={env}"))
        assert str(inbound) not in page and str(outbound) not in page
        assert str(schedule) not in page
    # The agent filter does not reach into another org either.
    agent_b = seeded.objects[Agent][0]
    page = text(client.get(url("triggers", org_a) + f"?env=dev&agent={agent_b.pk}"))
    assert "Triggers of" not in page
    # Nor can a form name another org's agent.
    for name, data in (("triggers-schedules-new", {"cron": "0 9 * * *", "timezone": "UTC"}),
                       ("triggers-inbound-new", {}),
                       ("triggers-outbound-new", {"url": "https://x.example/",
                                                  "events": ["run.failed"]})):
        refused = client.post(url(name, org_a) + "?env=dev", {"agent": str(agent_b.pk), **data})
        assert field_error(text(refused), "Select a valid choice."), name
    with org_a.scope():
        assert not (Schedule.objects.exists() or InboundWebhook.objects.exists()
                    or OutboundWebhook.objects.exists())
