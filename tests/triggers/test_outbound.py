"""Outbound webhooks: a finished run creates one delivery per matching webhook, sent signed
to a real loopback receiver, retried with exponential backoff, every attempt logged."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from station.agents.models import Agent
from station.runs.models import Run
from station.runs.services import start_run
from station.runs.signals import run_finished
from station.triggers import deliveries, services, tasks
from station.triggers.models import OutboundWebhook, WebhookDelivery
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture
from tests.triggers.conftest import make_agent

pytestmark = pytest.mark.django_db


class Receiver:
    """A loopback HTTP receiver that verifies Station's signature like a customer would."""

    def __init__(self) -> None:
        self.secret = ""
        self.fail_next = 0
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ts = self.headers["Station-Timestamp"]
                expected = hmac.new(receiver.secret.encode(), f"{ts}.".encode() + body,
                                    hashlib.sha256).hexdigest()
                offered = self.headers["Station-Signature"].removeprefix("v1=")
                valid = hmac.compare_digest(expected, offered)
                fresh = abs(time.time() - int(ts)) <= 300
                receiver.received.append({"valid": valid, "fresh": fresh,
                                          "body": json.loads(body),
                                          "event": self.headers["Station-Event"]})
                if not valid or not fresh:
                    code = 400
                elif receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    code = 503
                else:
                    code = 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"try again later")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/station"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True  # the receiver is on loopback
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    settings.WEBHOOK_MAX_ATTEMPTS = 4
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _outbound(fx: OrgFixture, url: str, agent: Agent | None = None, env: str = "dev",
              **kw: Any) -> tuple[OutboundWebhook, str]:
    with fx.scope():
        environment = Environment.objects.get(slug=env)
        return services.create_outbound_webhook(actor=SYSTEM, environment=environment,
                                                agent=agent, url=url, **kw)


def _finished_run(fx: OrgFixture, agent: Agent, status: str = Run.SUCCEEDED) -> Run:
    with fx.scope():
        run, _ = start_run(actor=SYSTEM, agent=agent, input={})
        Run.objects.filter(pk=run.pk).update(
            status=status, output="It is noon." if status == Run.SUCCEEDED else "",
            error="" if status == Run.SUCCEEDED else "model refused",
            started_at=timezone.now(), finished_at=timezone.now(), input_tokens=12,
            output_tokens=5, step_count=1)
        return Run.objects.get(pk=run.pk)


def _finish(fx: OrgFixture, run: Run) -> None:
    run_finished.send(sender=Run, org_id=str(fx.org.pk), run_id=str(run.pk),
                      status=run.status)


def _attempt(fx: OrgFixture, delivery_id: Any) -> dict[str, Any]:
    result: dict[str, Any] = tasks.deliver_webhook(org_id=str(fx.org.pk),
                                                   delivery_id=str(delivery_id))
    return result


def _make_due(fx: OrgFixture, delivery_id: Any) -> None:
    with fx.scope():
        WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now())


def test_finished_run_is_delivered_signed_to_the_receiver(
        org_a: OrgFixture, agent_a: Agent, receiver: Receiver,
        no_broker: dict[str, list[Any]], django_capture_on_commit_callbacks: Any) -> None:
    hook, secret = _outbound(org_a, receiver.url, agent=agent_a)
    receiver.secret = secret
    run = _finished_run(org_a, agent_a)
    with django_capture_on_commit_callbacks(execute=True):
        _finish(org_a, run)
        _finish(org_a, run)  # a duplicate signal creates nothing more
    (queued,) = no_broker["deliveries"]
    assert _attempt(org_a, queued["delivery_id"]) == {"retry_in": None}

    (got,) = receiver.received
    assert got["valid"] and got["fresh"] and got["event"] == "run.succeeded"
    body = got["body"]
    assert body["event"] == "run.succeeded" and body["delivery_id"] == queued["delivery_id"]
    assert body["run"]["id"] == str(run.pk) and body["run"]["status"] == "succeeded"
    assert body["run"]["output"] == "It is noon."
    assert body["run"]["tokens"] == {"input": 12, "output": 5, "total": 17}
    assert body["agent"] == {"id": str(agent_a.pk), "name": "clock-bot", "version": 1}
    assert body["run"]["finished_at"]
    with org_a.scope():
        delivery = WebhookDelivery.objects.get(pk=queued["delivery_id"])
        log = list(delivery.attempt_log.values_list("number", "response_code"))
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None and log == [(1, 200)]
    assert delivery.webhook_id == hook.pk and delivery.run_id == run.pk


def test_receiver_failing_twice_then_succeeding_is_retried_with_backoff(
        org_a: OrgFixture, agent_a: Agent, receiver: Receiver,
        no_broker: dict[str, list[Any]], django_capture_on_commit_callbacks: Any) -> None:
    _, receiver.secret = _outbound(org_a, receiver.url)  # environment-wide
    receiver.fail_next = 2
    run = _finished_run(org_a, agent_a, Run.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        _finish(org_a, run)
    delivery_id = no_broker["deliveries"][0]["delivery_id"]

    assert _attempt(org_a, delivery_id) == {"retry_in": 10.0}
    # The retry message arriving early (or twice) does nothing: the row decides.
    assert _attempt(org_a, delivery_id) == {"retry_in": None}
    assert len(receiver.received) == 1
    _make_due(org_a, delivery_id)
    assert _attempt(org_a, delivery_id) == {"retry_in": 20.0}  # doubled
    _make_due(org_a, delivery_id)
    assert _attempt(org_a, delivery_id) == {"retry_in": None}

    assert [r["valid"] for r in receiver.received] == [True, True, True]
    assert {r["body"]["delivery_id"] for r in receiver.received} == {delivery_id}
    assert receiver.received[0]["body"]["run"]["error"] == "model refused"
    assert [(kw["delivery_id"], countdown) for kw, countdown in no_broker["retries"]] == [
        (delivery_id, 10.0), (delivery_id, 20.0)]
    with org_a.scope():
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        log = list(delivery.attempt_log.values_list("number", "response_code", "error",
                                                    "response_body"))
    assert delivery.status == "delivered" and delivery.attempts == 3
    assert delivery.event == "run.failed"
    assert log == [(1, 503, "HTTP 503", "try again later"), (2, 503, "HTTP 503",
                                                             "try again later"),
                   (3, 200, "", "ok")]


def test_attempts_are_bounded(org_a: OrgFixture, agent_a: Agent, receiver: Receiver,
                              no_broker: dict[str, list[Any]],
                              django_capture_on_commit_callbacks: Any) -> None:
    _, receiver.secret = _outbound(org_a, receiver.url)
    receiver.fail_next = 100
    with django_capture_on_commit_callbacks(execute=True):
        _finish(org_a, _finished_run(org_a, agent_a))
    delivery_id = no_broker["deliveries"][0]["delivery_id"]
    for _ in range(4):
        _make_due(org_a, delivery_id)
        _attempt(org_a, delivery_id)
    with org_a.scope():
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        assert (delivery.status, delivery.attempts) == ("failed", 4)
        assert delivery.attempt_log.count() == 4
        assert delivery.next_attempt_at is None
    _make_due(org_a, delivery_id)
    assert _attempt(org_a, delivery_id) == {"retry_in": None}  # failed is final
    assert len(receiver.received) == 4


def test_unreachable_receiver_is_logged_as_an_error(
        org_a: OrgFixture, agent_a: Agent, settings: Any, no_broker: dict[str, list[Any]],
        django_capture_on_commit_callbacks: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    _outbound(org_a, "http://127.0.0.1:9/closed")
    with django_capture_on_commit_callbacks(execute=True):
        _finish(org_a, _finished_run(org_a, agent_a))
    delivery_id = no_broker["deliveries"][0]["delivery_id"]
    assert _attempt(org_a, delivery_id)["retry_in"] is not None
    with org_a.scope():
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "pending" and delivery.response_code is None
    assert "Connect" in delivery.error


def test_loopback_and_private_destinations_are_refused_by_default(
        org_a: OrgFixture, agent_a: Agent, receiver: Receiver, settings: Any,
        no_broker: dict[str, list[Any]], django_capture_on_commit_callbacks: Any) -> None:
    _, receiver.secret = _outbound(org_a, receiver.url)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    with django_capture_on_commit_callbacks(execute=True):
        _finish(org_a, _finished_run(org_a, agent_a))
    delivery_id = no_broker["deliveries"][0]["delivery_id"]
    assert _attempt(org_a, delivery_id) == {"retry_in": None}
    assert receiver.received == []
    with org_a.scope():
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "failed" and "non-public" in delivery.error
    for address in ("10.0.0.1", "169.254.169.254", "::1", "192.168.1.1"):
        with pytest.raises(deliveries.DestinationRefused):
            deliveries.check_destination(f"http://[{address}]/" if ":" in address
                                         else f"http://{address}/")


def test_only_matching_webhooks_get_a_delivery(
        org_a: OrgFixture, agent_a: Agent, receiver: Receiver,
        no_broker: dict[str, list[Any]], django_capture_on_commit_callbacks: Any) -> None:
    other = make_agent(org_a, name="other-bot")
    wanted, _ = _outbound(org_a, receiver.url, agent=agent_a, events=["run.succeeded"])
    _outbound(org_a, receiver.url, agent=other)  # another agent
    _outbound(org_a, receiver.url, agent=agent_a, events=["run.failed"])  # another event
    _outbound(org_a, receiver.url, env="prod")  # another environment
    _outbound(org_a, receiver.url, agent=agent_a, enabled=False)  # disabled
    with django_capture_on_commit_callbacks(execute=True):
        _finish(org_a, _finished_run(org_a, agent_a))
    with org_a.scope():
        assert list(WebhookDelivery.objects.values_list("webhook_id", flat=True)) == [
            wanted.pk]


def test_run_of_org_b_never_reaches_org_a_webhooks(
        org_a: OrgFixture, org_b: OrgFixture, agent_a: Agent, agent_b: Agent,
        receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    _outbound(org_a, receiver.url)
    run_b = _finished_run(org_b, agent_b)
    with django_capture_on_commit_callbacks(execute=True):
        _finish(org_b, run_b)
        # A forged signal naming org A with org B's run finds no run there.
        run_finished.send(sender=Run, org_id=str(org_a.org.pk), run_id=str(run_b.pk),
                          status="succeeded")
    with org_a.scope():
        assert not WebhookDelivery.objects.exists()
    with org_b.scope():
        assert not WebhookDelivery.objects.exists()


def test_unfinished_run_creates_no_delivery(org_a: OrgFixture, agent_a: Agent,
                                            receiver: Receiver) -> None:
    _outbound(org_a, receiver.url)
    with org_a.scope():
        run, _ = start_run(actor=SYSTEM, agent=agent_a, input={})
    assert deliveries.enqueue_for_run(org_id=str(org_a.org.pk), run_id=str(run.pk)) == []


def test_backoff_doubles_and_is_capped(settings: Any) -> None:
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    assert [deliveries.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert deliveries.backoff(30) == timedelta(hours=1)
