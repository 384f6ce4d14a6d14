"""POST /hooks/<id>: only a fresh, correctly signed, never-seen request starts a run, and
only in the webhook's own org."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client

from station.agents.models import Agent
from station.runs.models import Run
from station.triggers import secrets, services
from station.triggers.models import InboundSignature, InboundWebhook
from tests.fixtures import SYSTEM, OrgFixture

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def _hook(fx: OrgFixture, agent: Agent, **kw: Any) -> tuple[InboundWebhook, str]:
    with fx.scope():
        return services.create_inbound_webhook(actor=SYSTEM, agent=agent, **kw)


def _post(hook_id: object, body: bytes, secret: str | None = None, *,
          timestamp: int | None = None, signature: str | None = None,
          **headers: str) -> Any:
    ts = int(time.time()) if timestamp is None else timestamp
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    if secret is not None:
        extra["HTTP_STATION_TIMESTAMP"] = str(ts)
        extra["HTTP_STATION_SIGNATURE"] = signature or f"v1={secrets.sign(secret, ts, body)}"
    return Client().post(f"/hooks/{hook_id}", data=body, content_type="application/json",
                         **extra)


def _runs(fx: OrgFixture) -> list[Run]:
    with fx.scope():
        return list(Run.objects.all())


def test_signed_request_starts_a_run_with_the_body_as_input(
        org_a: OrgFixture, agent_a: Agent) -> None:
    hook, secret = _hook(org_a, agent_a)
    body = json.dumps({"question": "what time is it?"}).encode()
    response = _post(hook.pk, body, secret)
    assert response.status_code == 202, response.content
    (run,) = _runs(org_a)
    assert response.json() == {"run_id": str(run.pk), "created": True}
    assert (run.trigger, run.trigger_ref, run.input) == ("webhook", str(hook.pk),
                                                         {"question": "what time is it?"})
    with org_a.scope():
        assert InboundWebhook.objects.get(pk=hook.pk).last_used_at is not None


def _rejected(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"urn:station:problem:{code}"
    assert body["detail"]


def test_unsigned_request_is_refused(org_a: OrgFixture, agent_a: Agent) -> None:
    hook, _ = _hook(org_a, agent_a)
    _rejected(_post(hook.pk, b"{}"), 401, "signature_missing")
    assert _runs(org_a) == []


def test_wrong_secret_or_tampered_body_is_refused(org_a: OrgFixture, agent_a: Agent) -> None:
    hook, secret = _hook(org_a, agent_a)
    _rejected(_post(hook.pk, b"{}", "whsec_not-the-secret"), 401, "signature_invalid")
    ts = int(time.time())
    signed_for_other_body = f"v1={secrets.sign(secret, ts, b'{}')}"
    _rejected(_post(hook.pk, b'{"x": 1}', secret, timestamp=ts,
                    signature=signed_for_other_body), 401, "signature_invalid")
    # Signed for another timestamp than the one sent.
    _rejected(_post(hook.pk, b"{}", secret, timestamp=ts,
                    signature=f"v1={secrets.sign(secret, ts - 1, b'{}')}"),
              401, "signature_invalid")
    assert _runs(org_a) == []


@pytest.mark.parametrize("signature", ["sha256=abc", "v1=XYZ", "v1=" + "a" * 63, "v1"])
def test_malformed_signature_header_is_a_400(org_a: OrgFixture, agent_a: Agent,
                                             signature: str) -> None:
    hook, secret = _hook(org_a, agent_a)
    _rejected(_post(hook.pk, b"{}", secret, signature=signature), 400, "signature_malformed")
    assert _runs(org_a) == []


# Just outside the window, with room for a slow test machine between signing and checking.
@pytest.mark.parametrize("skew", [-305, 305, -3600])
def test_timestamp_outside_five_minutes_is_refused_even_when_signed(
        org_a: OrgFixture, agent_a: Agent, skew: int) -> None:
    hook, secret = _hook(org_a, agent_a)
    _rejected(_post(hook.pk, b"{}", secret, timestamp=int(time.time()) + skew),
              401, "timestamp_outside_window")
    assert _runs(org_a) == []


def test_replayed_request_is_refused(org_a: OrgFixture, agent_a: Agent) -> None:
    hook, secret = _hook(org_a, agent_a)
    ts = int(time.time())
    assert _post(hook.pk, b'{"n": 1}', secret, timestamp=ts).status_code == 202
    _rejected(_post(hook.pk, b'{"n": 1}', secret, timestamp=ts), 409, "signature_replayed")
    assert len(_runs(org_a)) == 1
    # The same body signed anew is a new request.
    assert _post(hook.pk, b'{"n": 1}', secret, timestamp=ts + 1).status_code == 202
    assert len(_runs(org_a)) == 2


def test_rejected_request_records_no_signature(org_a: OrgFixture) -> None:
    from tests.triggers.conftest import make_agent

    agent = make_agent(org_a, name="strict", input_schema={
        "type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}})
    hook, secret = _hook(org_a, agent)
    ts = int(time.time())
    _rejected(_post(hook.pk, b'{"x": 1}', secret, timestamp=ts), 422, "invalid_input")
    _rejected(_post(hook.pk, b"[1, 2]", secret), 422, "invalid_input")
    _rejected(_post(hook.pk, b"not json", secret), 422, "invalid_input")
    with org_a.scope():
        assert not InboundSignature.objects.exists()
    assert _runs(org_a) == []


def test_disabled_webhook_is_refused(org_a: OrgFixture, agent_a: Agent) -> None:
    hook, secret = _hook(org_a, agent_a, enabled=False)
    _rejected(_post(hook.pk, b"{}", secret), 403, "webhook_disabled")
    assert _runs(org_a) == []


@pytest.mark.parametrize("hook_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000",
                                     "%27%3B--"])
def test_unknown_webhook_is_a_404(org_a: OrgFixture, hook_id: str) -> None:
    _rejected(_post(hook_id, b"{}", "whsec_x"), 404, "not_found")


def test_get_is_not_allowed(org_a: OrgFixture, agent_a: Agent) -> None:
    hook, _ = _hook(org_a, agent_a)
    response = Client().get(f"/hooks/{hook.pk}")
    assert response.status_code == 405
    assert response["Content-Type"].startswith(PROBLEM)


def test_rotation_retires_the_old_secret(org_a: OrgFixture, agent_a: Agent) -> None:
    hook, old = _hook(org_a, agent_a)
    with org_a.scope():
        new = services.rotate_webhook_secret(actor=SYSTEM, webhook=hook)
    assert new != old and new.startswith("whsec_")
    _rejected(_post(hook.pk, b"{}", old), 401, "signature_invalid")
    assert _post(hook.pk, b"{}", new).status_code == 202


def test_a_webhook_of_org_a_never_starts_a_run_in_org_b(
        org_a: OrgFixture, org_b: OrgFixture, agent_a: Agent, agent_b: Agent) -> None:
    hook_a, secret_a = _hook(org_a, agent_a)
    hook_b, secret_b = _hook(org_b, agent_b)
    # Org B's secret against org A's id, and org A's secret against org B's id: refused.
    _rejected(_post(hook_a.pk, b"{}", secret_b), 401, "signature_invalid")
    _rejected(_post(hook_b.pk, b"{}", secret_a), 401, "signature_invalid")
    assert _runs(org_a) == [] and _runs(org_b) == []
    # A correct call to A's webhook runs A's agent in org A, whatever else it carries.
    response = _post(hook_a.pk, json.dumps({"org": str(org_b.org.pk)}).encode(), secret_a,
                     **{"X-Org": str(org_b.org.pk)})
    assert response.status_code == 202, response.content
    (run,) = _runs(org_a)
    assert run.agent_id == agent_a.pk and run.organization_id == org_a.org.pk
    assert _runs(org_b) == []


def test_webhook_secret_is_stored_encrypted(org_a: OrgFixture, agent_a: Agent) -> None:
    hook, secret = _hook(org_a, agent_a)
    with org_a.scope():
        row = InboundWebhook.objects.values().get(pk=hook.pk)
    flat = repr(row).encode()
    assert secret.encode() not in flat and secret[6:].encode() not in flat
    assert bytes(row["secret_ciphertext"]) != secret.encode()
    assert row["secret_last_four"] == secret[-4:]


def test_idempotency_key_header_returns_the_same_run(org_a: OrgFixture,
                                                     agent_a: Agent) -> None:
    hook, secret = _hook(org_a, agent_a)
    first = _post(hook.pk, b"{}", secret, **{"Idempotency-Key": "evt-1"})
    second = _post(hook.pk, b"{}", secret, timestamp=int(time.time()) - 1,
                   **{"Idempotency-Key": "evt-1"})
    assert first.status_code == second.status_code == 202
    assert first.json()["run_id"] == second.json()["run_id"]
    assert second.json()["created"] is False
    assert len(_runs(org_a)) == 1
