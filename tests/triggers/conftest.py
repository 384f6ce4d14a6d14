"""Fixtures for trigger tests: an agent with a published version, and task sends recorded
instead of going to a broker."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from django.db import transaction

from station.agents.models import Agent, AgentVersion
from tenants.models import Environment
from tests.fixtures import OrgFixture


def make_agent(fx: OrgFixture, name: str = "clock-bot", env: str = "dev",
               input_schema: dict[str, Any] | None = None) -> Agent:
    """An agent with one published version (rows written directly: publishing has its own
    tests)."""
    definition = {"description": "", "instructions": "Tell the time.", "provider": "scripted",
                  "model": "scripted-1", "parameters": {}, "allowed_tools": [],
                  "input_schema": input_schema or {}, "max_steps": 10,
                  "max_tokens": 100_000, "max_seconds": 120}
    with fx.scope(), transaction.atomic():
        environment = Environment.objects.get(slug=env)
        agent = Agent.objects.create(organization=fx.org, environment=environment, name=name,
                                     latest_version=1, **definition)
        text = json.dumps(definition, sort_keys=True)
        AgentVersion.objects.create(organization=fx.org, agent=agent, number=1,
                                    definition=definition,
                                    content_hash=hashlib.sha256(text.encode()).hexdigest())
    return agent


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch, settings: Any) -> dict[str, list[Any]]:
    """Run dispatches and webhook delivery tasks are recorded, not sent."""
    from station.runs import lifecycle
    from station.triggers import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent: dict[str, list[Any]] = {"runs": [], "deliveries": [], "retries": []}
    monkeypatch.setattr(lifecycle, "_send",
                        lambda org, run: sent["runs"].append((str(org), str(run))))
    monkeypatch.setattr(tasks.deliver_webhook, "delay",
                        lambda **kw: sent["deliveries"].append(kw))
    monkeypatch.setattr(tasks.deliver_webhook, "apply_async",
                        lambda kwargs, countdown=None, **_: sent["retries"].append(
                            (kwargs, countdown)))
    return sent


@pytest.fixture
def agent_a(org_a: OrgFixture) -> Agent:
    return make_agent(org_a)


@pytest.fixture
def agent_b(org_b: OrgFixture) -> Agent:
    return make_agent(org_b)
