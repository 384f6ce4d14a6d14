"""The `schedules` envcode kind: export, validation, apply with prune, promotion notices."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from station.agents.models import Agent
from station.envcode.bundle import Errors
from station.envcode.kind_schedules import KIND
from station.triggers import services
from station.triggers.models import Schedule
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture
from tests.triggers.conftest import make_agent

pytestmark = pytest.mark.django_db

BUNDLE = """
weekday-report:
  agent: clock-bot
  cron: 0 9 * * 1-5
  timezone: Europe/Paris
  input: {question: "what changed"}
"""


def _apply(fx: OrgFixture, text: str, env: str = "dev", prune: bool = False) -> list[str]:
    errors = Errors()
    desired = KIND.parse({"schedules.yaml": text}, errors)
    assert not errors, errors.by_field
    with fx.scope():
        environment = Environment.objects.get(slug=env)
        changes = KIND.diff(desired, KIND.current(environment), prune=prune)
        KIND.apply([c for c in changes if c.action != "missing"], actor=SYSTEM,
                   environment=environment)
    return [f"{c.action} {c.name}" for c in changes]


def test_apply_export_round_trip(org_a: OrgFixture, agent_a: Agent) -> None:
    assert _apply(org_a, BUNDLE) == ["add weekday-report"]
    assert _apply(org_a, BUNDLE) == []  # idempotent
    with org_a.scope():
        schedule = Schedule.objects.get(name="weekday-report")
        exported = KIND.export(Environment.objects.get(slug="dev"))["schedules.yaml"]
    assert (schedule.cron, schedule.timezone, schedule.input) == (
        "0 9 * * 1-5", "Europe/Paris", {"question": "what changed"})
    assert PeriodicTask.objects.filter(name=schedule.periodic_task_name).exists()
    assert _apply(org_a, exported) == []
    assert _apply(org_a, BUNDLE.replace("0 9", "30 8")) == ["change weekday-report"]
    assert _apply(org_a, "{}\n", prune=True) == ["remove weekday-report"]
    assert not PeriodicTask.objects.filter(name=schedule.periodic_task_name).exists()


def test_unnamed_schedules_are_left_alone(org_a: OrgFixture, agent_a: Agent) -> None:
    with org_a.scope():
        services.create_schedule(actor=SYSTEM, agent=agent_a, cron_expression="0 * * * *")
    assert _apply(org_a, "{}\n", prune=True) == []
    with org_a.scope():
        assert Schedule.objects.count() == 1


def test_missing_agent_is_a_notice(org_a: OrgFixture) -> None:
    make_agent(org_a, env="staging")
    assert _apply(org_a, BUNDLE) == ["missing weekday-report"]


def test_invalid_entries_are_reported_by_entry() -> None:
    errors = Errors()
    KIND.parse({"schedules.yaml": "a:\n  agent: x\n  cron: nope\n  timezone: Mars/Base\n"
                                  "  colour: red\n"}, errors)
    text = str(errors.by_field)
    assert "a.cron" in text and "a.timezone" in text and "a.colour" in text
