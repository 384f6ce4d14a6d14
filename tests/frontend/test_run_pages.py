"""Runs in the console: the run list and its filters, the Run agent form, the run page, cancel,
held tool calls (run page and approvals inbox), and the live event stream (server-sent
events) with its access checks. Runs execute in-process (`engine.execute`) against the real
`mcp-server-time`, on committed data, as in tests/runs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse

from frontend.views import run_events
from frontend.views import runs as run_views
from station.agents import services as agents
from station.agents.models import Agent
from station.providers import services as providers
from station.providers.models import ModelProvider
from station.runs import engine, services
from station.runs.models import Run, RunStep, ToolApproval
from station.tools import policies
from tenants import context
from tenants import services as tenant_services
from tenants.models import Environment, User
from tests.fixtures import SYSTEM
from tests.runs import conftest as runs_conftest
from tests.runs.conftest import TIME_SERVER, RunWorld

sent = runs_conftest.sent
worker_settings = runs_conftest.worker_settings

CLOCK_CALL: dict[str, Any] = {"tool_calls": [{"name": "clock__get_current_time",
                              "arguments": {"timezone": "Europe/Paris"}}]}
PARIS: list[dict[str, Any]] = [CLOCK_CALL, {"content": "Paris: {last_tool_result}"}]


@pytest.fixture
def world(committed_db: None, make_org: Any, sent: Any) -> RunWorld:
    """tests/runs' world with only the real time server (one discovery, not two)."""
    from station.tools import discovery
    from station.tools import services as tools

    fx = make_org("runco")
    with fx.scope():
        env = Environment.objects.get(slug="dev")
        providers.create_provider(actor=SYSTEM, environment=env, name="scripted",
                                  kind="scripted")
        clock = tools.create_mcp_server(actor=SYSTEM, environment=env, name="clock",
                                        transport="stdio", command=TIME_SERVER)
    with context.org_context(fx.org):
        result = discovery.discover(clock, actor=SYSTEM, purpose="test discovery")
    assert result.ok, result.error
    return RunWorld(fx, env, {"clock": clock})


# --- helpers -----------------------------------------------------------------------------------


def url(name: str, world: RunWorld, *args: object) -> str:
    return reverse(f"console:{name}", args=[world.fx.org.slug, *args])


def text(response: Any) -> str:
    return response.content.decode()


def publish(world: RunWorld, name: str, scenario: list[dict[str, Any]], *,
            env: Environment | None = None, tools: list[str] | None = None,
            input_schema: dict[str, Any] | None = None) -> Agent:
    """An agent published through the agents' services (a scripted provider first)."""
    env = env or world.env
    with world.fx.scope():
        if not ModelProvider.objects.filter(environment=env, name="scripted").exists():
            providers.create_provider(actor=SYSTEM, environment=env, name="scripted",
                                      kind="scripted")
        agent = agents.create_agent(
            actor=SYSTEM, environment=env, name=name, provider="scripted", model="scripted-1",
            instructions="You are a test agent.", parameters={"scenario": scenario},
            allowed_tools=tools or [], input_schema=input_schema or {}, max_seconds=60)
        agents.publish_agent(actor=SYSTEM, agent=agent)
    return agent


def start(world: RunWorld, agent: Agent, data: Any = None, **kwargs: Any) -> Run:
    with world.fx.scope():
        run, _ = services.start_run(actor=SYSTEM, agent=agent, input=data or {}, **kwargs)
    return run


def execute(world: RunWorld, run: Run) -> Run:
    with context.org_context(world.fx.org):
        engine.execute(run.pk)
    return reload(world, run)


def reload(world: RunWorld, run: Run) -> Run:
    with world.fx.scope():
        return Run.objects.get(pk=run.pk)


def user(world: RunWorld, role: str) -> User:
    return world.fx.add_member(f"{role}@runco.example", role).user


def events(chunks: Iterator[bytes] | list[bytes]) -> list[dict[str, Any]]:
    """Parse server-sent events (comments and retry lines kept as their own entries)."""
    parsed: list[dict[str, Any]] = []
    for block in b"".join(chunks).decode().split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            key, _, value = line.partition(":")
            fields[key or "comment"] = value.strip()
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
        parsed.append(fields)
    return parsed


def named(parsed: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in parsed if e.get("event") == event]


@pytest.fixture
def fast_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_events, "POLL_SECONDS", 0.5)
    monkeypatch.setattr(run_events, "STREAM_SECONDS", 20.0)


# --- the run list --------------------------------------------------------------------------------


def test_run_list_is_newest_first_with_filters_and_pages(world: RunWorld, login: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with world.fx.scope():
        prod = Environment.objects.get(slug="prod")
    alpha = publish(world, "alpha", [{"content": "a"}])
    beta = publish(world, "beta", [{"content": "b"}], env=prod)
    first = start(world, alpha)
    execute(world, first)
    second = start(world, alpha, trigger="cli")
    third = start(world, beta)
    client = login(world.fx.owner)

    page = text(client.get(url("runs", world)))
    assert ">Runs</a>" in page and ">Approvals</a>" in page  # the nav
    order = [page.index(f'data-run="{r.pk}"') for r in (third, second, first)]
    assert order == sorted(order)  # newest first
    assert "Succeeded" in page and "Queued" in page

    def shown(query: str) -> set[str]:
        body = text(client.get(url("runs", world) + query))
        return {str(r.pk) for r in (first, second, third) if f'data-run="{r.pk}"' in body}

    assert shown("?environment=prod") == {str(third.pk)}
    assert shown(f"?agent={alpha.pk}") == {str(first.pk), str(second.pk)}
    assert shown("?status=succeeded") == {str(first.pk)}
    assert shown("?trigger=cli") == {str(second.pk)}
    assert shown("?status=failed") == set()
    assert "No runs match these filters" in text(client.get(url("runs", world)
                                                            + "?status=failed"))

    monkeypatch.setattr(run_views, "PAGE_SIZE", 2)
    page1 = text(client.get(url("runs", world)))
    assert "Page 1 of 2" in page1 and f'data-run="{first.pk}"' not in page1
    page2 = text(client.get(url("runs", world) + "?page=2"))
    assert f'data-run="{first.pk}"' in page2


def test_run_list_hides_environments_the_member_cannot_read(world: RunWorld,
                                                            login: Any) -> None:
    with world.fx.scope():
        prod = Environment.objects.get(slug="prod")
    secret_run = start(world, publish(world, "prod-bot", [{"content": "x"}], env=prod))
    visible_run = start(world, publish(world, "dev-bot", [{"content": "x"}]))
    membership = world.fx.add_member("narrowed@runco.example", "developer")
    with world.fx.scope():
        tenant_services.set_environment_role(actor=SYSTEM, membership=membership,
                                             environment=prod, role="billing")
    client = login(membership.user)
    page = text(client.get(url("runs", world)))
    assert str(visible_run.pk) in page and str(secret_run.pk) not in page
    assert text(client.get(url("runs", world) + "?environment=prod")).count("data-run=") \
        == 1  # an unknown filter value is ignored, never widens
    assert client.get(url("runs-detail", world, secret_run.pk)).status_code == 404
    assert client.get(url("runs-events", world, secret_run.pk)).status_code == 404


# --- starting a run ----------------------------------------------------------------------------


def test_run_agent_form_validates_json_and_the_input_schema(world: RunWorld, login: Any,
                                                            sent: list[tuple[str, str]]) -> None:
    schema = {"type": "object", "required": ["question"],
              "properties": {"question": {"type": "string"}}}
    agent = publish(world, "asker", [{"content": "ok"}], input_schema=schema)
    with world.fx.scope():
        agents.create_agent(actor=SYSTEM, environment=world.env, name="draft",
                            provider="scripted", model="scripted-1")
    client = login(world.fx.owner)
    new = url("runs-new", world) + "?env=dev"
    page = text(client.get(new))
    assert "asker (v1)" in page and "draft" not in page  # only published agents

    response = client.post(new, {"agent": str(agent.pk), "input": "{not json"})
    assert response.status_code == 200
    assert "Not valid JSON" in text(response) and "line 1, column 2" in text(response)

    response = client.post(new, {"agent": str(agent.pk), "input": '{"question": 42}'})
    assert response.status_code == 200
    assert "$.question: 42 is not of type" in text(response)
    response = client.post(new, {"agent": str(agent.pk), "input": "{}"})
    assert "&#x27;question&#x27; is a required property" in text(response)
    with world.fx.scope():
        assert not Run.objects.exists()
    assert sent == []

    response = client.post(new, {"agent": str(agent.pk), "input": '{"question": "time?"}'})
    with world.fx.scope():
        run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("runs-detail", world, run.pk)
    assert (run.trigger, run.input, run.status) == ("console", {"question": "time?"}, "queued")
    assert run.created_by_label == world.fx.owner.email
    assert sent == [(str(world.fx.org.pk), str(run.pk))]


def test_a_viewer_cannot_start_a_run(world: RunWorld, login: Any) -> None:
    agent = publish(world, "guarded", [{"content": "ok"}])
    client = login(user(world, "viewer"))
    assert "Run agent" not in text(client.get(url("runs", world)))
    response = client.post(url("runs-new", world) + "?env=dev",
                           {"agent": str(agent.pk), "input": "{}"})
    assert response.status_code == 403
    with world.fx.scope():
        assert not Run.objects.exists()


# --- the run page ----------------------------------------------------------------------------


def test_run_page_shows_the_timeline_totals_and_output(world: RunWorld, login: Any) -> None:
    agent = publish(world, "clock-bot", PARIS, tools=["clock/get_current_time"])
    run = execute(world, start(world, agent, {"message": "What time is it in Paris?"}))
    assert run.status == Run.SUCCEEDED, run.error
    client = login(world.fx.owner)
    page = text(client.get(url("runs-detail", world, run.pk)))
    assert 'data-final="true"' in page and "Succeeded" in page
    assert "clock-bot" in page and "v1" in page and "tests" in page  # agent, version, who
    assert "What time is it in Paris?" in page  # the input
    assert [f'id="step-{n}"' in page for n in (1, 2, 3)] == [True] * 3
    assert "clock/get_current_time" in page and "&quot;Europe/Paris&quot;" in page
    assert page.count('data-kind="model"') == 2 and page.count('data-kind="tool"') == 1
    assert f"{run.total_tokens} <span" in page  # totals
    assert 'id="run-output"' in page and "Paris: " in page
    assert "Cancel run" not in page  # a finished run has nothing to cancel


def test_cancelling_a_finished_run_says_so(world: RunWorld, login: Any) -> None:
    run = execute(world, start(world, publish(world, "done", [{"content": "ok"}])))
    client = login(world.fx.owner)
    response = client.post(url("runs-cancel", world, run.pk), follow=True)
    assert "The run already finished (succeeded); there is nothing to cancel." in text(
        response)
    assert reload(world, run).status == Run.SUCCEEDED


def test_cancel_a_queued_run_and_who_may(world: RunWorld, login: Any) -> None:
    run = start(world, publish(world, "waiting", [{"content": "ok"}]))
    viewer = login(user(world, "viewer"))
    page = text(viewer.get(url("runs-detail", world, run.pk)))
    assert "Cancel run" not in page and 'id="run-summary"' in page
    assert viewer.post(url("runs-cancel", world, run.pk)).status_code == 403
    assert reload(world, run).status == Run.QUEUED

    operator = login(user(world, "operator"))
    assert "Cancel run" in text(operator.get(url("runs-detail", world, run.pk)))
    response = operator.post(url("runs-cancel", world, run.pk), follow=True)
    assert "Run cancelled." in text(response)
    run = reload(world, run)
    assert run.status == Run.CANCELLED and "operator@runco.example" in run.error


# --- held tool calls ---------------------------------------------------------------------------


def _held(world: RunWorld) -> tuple[Run, ToolApproval]:
    with world.fx.scope():
        policies.set_policy(actor=SYSTEM, environment=world.env, tool="clock/get_current_time",
                            effect="require_approval")
    agent = publish(world, "careful", PARIS, tools=["clock/get_current_time"])
    run = execute(world, start(world, agent))
    assert run.status == Run.WAITING_APPROVAL, run.error
    with world.fx.scope():
        return run, ToolApproval.objects.get(run=run)


def test_a_held_call_is_approved_from_the_run_page(world: RunWorld, login: Any,
                                                   sent: list[tuple[str, str]]) -> None:
    run, approval = _held(world)
    developer = login(user(world, "developer"))  # may cancel, may not approve
    page = text(developer.get(url("runs-detail", world, run.pk)))
    assert 'id="held-call"' in page and "Europe/Paris" in page
    assert "Approve</button>" not in page and "runs.approve" in page
    assert developer.post(url("approvals-decide", world, approval.pk),
                          {"decision": "approve"}).status_code == 403

    operator = login(user(world, "operator"))
    page = text(operator.get(url("runs-detail", world, run.pk)))
    assert "Approve</button>" in page and "Reject</button>" in page
    response = operator.post(url("approvals-decide", world, approval.pk),
                             {"decision": "approve", "next": "run"})
    assert response["Location"] == url("runs-detail", world, run.pk)
    assert reload(world, run).status == Run.QUEUED
    run = execute(world, run)
    assert run.status == Run.SUCCEEDED and "Europe/Paris" in run.output
    # Deciding again is refused with a clear message.
    response = operator.post(url("approvals-decide", world, approval.pk),
                             {"decision": "reject"}, follow=True)
    assert "already approved by operator@runco.example" in text(response)


def test_approvals_inbox_lists_held_calls_with_a_nav_badge_and_rejects(
        world: RunWorld, login: Any) -> None:
    run, approval = _held(world)
    operator = login(user(world, "operator"))
    page = text(operator.get(url("approvals", world)))
    assert f'data-approval="{approval.pk}"' in page
    assert 'data-tool="clock/get_current_time"' in page and "careful" in page
    assert 'class="nav-badge" aria-label="1 waiting">1<' in page
    viewer = login(user(world, "viewer"))
    viewer_page = text(viewer.get(url("approvals", world)))
    assert f'data-approval="{approval.pk}"' in viewer_page  # sees it, cannot decide it
    assert "Approve</button>" not in viewer_page and "nav-badge" not in viewer_page

    response = operator.post(url("approvals-decide", world, approval.pk),
                             {"decision": "reject", "reason": "not during the freeze",
                              "next": "approvals"}, follow=True)
    assert response.redirect_chain[-1][0] == url("approvals", world)
    assert "Nothing waiting for approval" in text(response) and "nav-badge" not in text(
        response)
    run = reload(world, run)
    assert run.status == Run.FAILED and "not during the freeze" in run.error


def test_other_orgs_cannot_decide_or_see_held_calls(world: RunWorld, login: Any,
                                                    make_org: Any) -> None:
    run, approval = _held(world)
    other = make_org("otherco")
    client = login(other.owner)
    foreign = reverse("console:approvals-decide", args=[other.org.slug, approval.pk])
    assert client.post(foreign, {"decision": "approve"}).status_code == 404
    assert str(approval.pk) not in text(client.get(
        reverse("console:approvals", args=[other.org.slug])))
    assert client.post(url("approvals-decide", world, approval.pk),
                       {"decision": "approve"}).status_code == 404
    assert reload(world, run).status == Run.WAITING_APPROVAL


# --- the live stream -----------------------------------------------------------------------


def test_stream_of_a_finished_run_sends_steps_status_and_end(world: RunWorld, login: Any,
                                                             fast_stream: None) -> None:
    agent = publish(world, "clock-bot", PARIS, tools=["clock/get_current_time"])
    run = execute(world, start(world, agent))
    client = login(world.fx.owner)
    response = client.get(url("runs-events", world, run.pk))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache, no-store"
    parsed = events(response.streaming_content)
    assert parsed[0] == {"retry": "1000"}
    steps = named(parsed, "step")
    assert [e["data"]["sequence"] for e in steps] == [1, 2, 3]
    assert [e["id"] for e in steps] == ["1", "2", "3"]
    assert 'id="step-2"' in steps[1]["data"]["html"]
    assert "clock/get_current_time" in steps[1]["data"]["html"]
    status = named(parsed, "status")[-1]["data"]
    assert status["status"] == "succeeded" and status["final"] is True
    assert 'data-final="true"' in status["html"]
    assert parsed[-1]["event"] == "end" and parsed[-1]["id"] == "3"

    # A reconnecting EventSource gets only what it missed.
    again = events(client.get(url("runs-events", world, run.pk),
                              headers={"Last-Event-ID": "2"}).streaming_content)
    assert [e["data"]["sequence"] for e in named(again, "step")] == [3]
    resumed = events(client.get(url("runs-events", world, run.pk) + "?after=3")
                     .streaming_content)
    assert named(resumed, "step") == [] and resumed[-1]["event"] == "end"


def test_steps_stream_live_while_the_run_executes(world: RunWorld, login: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A long poll interval: steps arriving promptly prove LISTEN/NOTIFY carries them.
    monkeypatch.setattr(run_events, "POLL_SECONDS", 30.0)
    monkeypatch.setattr(run_events, "STREAM_SECONDS", 60.0)
    agent = publish(world, "slow-clock", [
        {**CLOCK_CALL, "delay_seconds": 0.5},
        {"content": "Paris: {last_tool_result}", "delay_seconds": 1.5}],
        tools=["clock/get_current_time"])
    run = start(world, agent)
    client = login(world.fx.owner)
    stream = iter(client.get(url("runs-events", world, run.pk)).streaming_content)
    assert events([next(stream)]) == [{"retry": "1000"}]
    first = events([next(stream)])
    assert first[0]["event"] == "status" and first[0]["data"]["status"] == "queued"

    worker = threading.Thread(target=_execute_in_thread, args=(world, run))
    started = time.monotonic()
    worker.start()
    seen: list[dict[str, Any]] = []
    status_when_first_step: str | None = None
    try:
        for chunk in stream:
            for event in events([chunk]):
                seen.append(event)
                if event.get("event") == "step" and status_when_first_step is None:
                    status_when_first_step = reload(world, run).status
    finally:
        worker.join(60)
    elapsed = time.monotonic() - started
    assert [e["data"]["sequence"] for e in named(seen, "step")] == [1, 2, 3]
    assert status_when_first_step == Run.RUNNING  # a step appeared before the run finished
    statuses = [e["data"]["status"] for e in named(seen, "status")]
    assert statuses[0] == "running" and statuses[-1] == "succeeded"
    assert seen[-1]["event"] == "end"
    assert elapsed < 20, elapsed  # never waited out a 30 s poll


def _execute_in_thread(world: RunWorld, run: Run) -> None:
    try:
        with context.org_context(world.fx.org):
            engine.execute(run.pk)
    finally:
        connection.close()


def _app_role_sessions() -> list[tuple[str, str]]:
    """(state, query) of the app role's other sessions: a role sees its own sessions' state."""
    import psycopg
    from django.db import connections

    params = connections["default"].get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    with psycopg.connect(**params, autocommit=True) as conn:
        return [(str(state), str(query)) for state, query in conn.execute(
            "SELECT state, query FROM pg_stat_activity WHERE datname = current_database() "
            "AND usename = current_user AND pid <> pg_backend_pid()")]


def test_a_waiting_stream_holds_no_transaction_open(world: RunWorld, login: Any,
                                                    fast_stream: None) -> None:
    run = start(world, publish(world, "idle", [{"content": "ok"}]))
    client = login(world.fx.owner)
    response = client.get(url("runs-events", world, run.pk))
    received: list[bytes] = []

    def read() -> None:
        try:
            received.extend(response.streaming_content)
        finally:
            connection.close()  # what request_finished does for a served stream

    reader = threading.Thread(target=read)
    reader.start()
    try:
        time.sleep(1.5)  # the stream sent the queued status and waits on LISTEN
        sessions = _app_role_sessions()
        assert any(q.startswith("LISTEN") and state == "idle" for state, q in sessions), \
            sessions
        assert not [s for s in sessions if s[0].startswith("idle in transaction")], sessions
    finally:
        with world.fx.scope():
            services.cancel_run(actor=SYSTEM, run=Run.objects.get(pk=run.pk))
        reader.join(10)
    assert not reader.is_alive()
    parsed = events(received)
    assert named(parsed, "status")[-1]["data"]["status"] == "cancelled"
    assert parsed[-1]["event"] == "end"
    assert run_events.open_stream_count() == 0


def test_a_busy_process_answers_at_once_and_the_page_polls(world: RunWorld, login: Any,
                                                           settings: Any) -> None:
    settings.LIVE_STREAMS_PER_PROCESS = 0
    run = start(world, publish(world, "busy", [{"content": "ok"}]))
    client = login(world.fx.owner)
    started = time.monotonic()
    parsed = events(client.get(url("runs-events", world, run.pk)).streaming_content)
    assert time.monotonic() - started < 2
    assert parsed[0] == {"retry": "3000"}
    assert named(parsed, "status")[0]["data"]["status"] == "queued"
    assert not named(parsed, "end")  # not final: the browser asks again after 3 s


@pytest.mark.parametrize("who", ["other_org", "no_runs_read", "narrowed", "anonymous"])
def test_stream_refuses_outsiders_and_sends_no_data(world: RunWorld, login: Any,
                                                    make_org: Any, who: str,
                                                    fast_stream: None) -> None:
    from django.test import Client

    agent = publish(world, "private", [{"content": "the secret answer"}])
    run = execute(world, start(world, agent, {"message": "confidential input"}))
    target = url("runs-events", world, run.pk)
    if who == "other_org":
        other = make_org("otherco")
        client = login(other.owner)
        # Their own org slug with our run id, and our org slug: both 404.
        mine = reverse("console:runs-events", args=[other.org.slug, run.pk])
        assert client.get(mine).status_code == 404
        expected = 404
    elif who == "no_runs_read":
        client, expected = login(user(world, "billing")), 403
    elif who == "narrowed":
        membership = world.fx.add_member("narrowed@runco.example", "owner")
        with world.fx.scope():
            tenant_services.set_environment_role(actor=SYSTEM, membership=membership,
                                                 environment=world.env, role="billing")
        client, expected = login(membership.user), 404
    else:
        client, expected = Client(), 302
    response = client.get(target)
    assert response.status_code == expected
    assert not getattr(response, "streaming", False)
    body = response.content.decode()
    assert "the secret answer" not in body and "confidential input" not in body
    assert "data:" not in body
    if expected == 302:
        assert response["Location"].startswith("/accounts/login/")


def test_stream_is_get_only(world: RunWorld, login: Any) -> None:
    run = start(world, publish(world, "posty", [{"content": "ok"}]))
    client = login(world.fx.owner)
    assert client.post(url("runs-events", world, run.pk)).status_code == 405


def test_steps_of_the_run_are_not_mixed_with_other_runs(world: RunWorld, login: Any,
                                                        fast_stream: None) -> None:
    agent = publish(world, "twins", [{"content": "ok"}])
    mine, theirs = start(world, agent), start(world, agent)
    execute(world, theirs)
    execute(world, mine)
    client = login(world.fx.owner)
    parsed = events(client.get(url("runs-events", world, mine.pk)).streaming_content)
    with world.fx.scope():
        my_steps = RunStep.objects.filter(run=mine).count()
    assert len(named(parsed, "step")) == my_steps == 1
