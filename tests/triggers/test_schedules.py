"""Schedules: each owns one beat entry kept in sync in the same transaction, beat sees only
its own tables, and a tick starts the schedule's run exactly once per fire time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import transaction
from django_celery_beat.models import PeriodicTask

from audit.models import AuditEvent
from station.agents.models import Agent
from station.core.errors import AccessDenied, InvalidInput
from station.runs.models import Run
from station.triggers import firing, services, tasks
from station.triggers.beat import StationScheduler
from station.triggers.models import Schedule
from tenants.authz import Principal
from tests.fixtures import SYSTEM, OrgFixture
from tests.triggers.conftest import make_agent

pytestmark = pytest.mark.django_db


def _create(fx: OrgFixture, agent: Agent, **kw: Any) -> Schedule:
    with fx.scope():
        return services.create_schedule(actor=SYSTEM, agent=agent,
                                        cron_expression=kw.pop("cron", "0 9 * * 1-5"),
                                        timezone_name=kw.pop("tz", "Europe/Paris"), **kw)


def _task(schedule: Schedule) -> PeriodicTask | None:
    with transaction.atomic():
        return (PeriodicTask.objects.select_related("crontab")
                .filter(name=schedule.periodic_task_name).first())


def test_create_writes_a_beat_entry_with_only_ids(org_a: OrgFixture, agent_a: Agent) -> None:
    schedule = _create(org_a, agent_a, input={"question": "time?"}, name="mornings")
    task = _task(schedule)
    assert task is not None and task.enabled
    assert task.task == "station.triggers.fire_schedule"
    assert json.loads(task.kwargs) == {"org_id": str(org_a.org.pk),
                                       "schedule_id": str(schedule.pk)}
    assert "time?" not in task.kwargs + task.args + task.description  # no tenant data
    crontab = task.crontab
    assert crontab is not None
    assert (crontab.minute, crontab.hour, crontab.day_of_week) == ("0", "9", "1-5")
    assert str(crontab.timezone) == "Europe/Paris"
    assert schedule.next_run_at is not None and schedule.next_run_at.minute == 0
    with org_a.scope():
        event = AuditEvent.objects.order_by("-sequence").first()
    assert event is not None and event.action == "schedule.created"


def test_update_disable_and_delete_keep_the_beat_entry_in_sync(
        org_a: OrgFixture, agent_a: Agent) -> None:
    schedule = _create(org_a, agent_a)
    with org_a.scope():
        schedule = services.update_schedule(actor=SYSTEM, schedule=schedule,
                                            cron="*/15 * * * *", timezone="Asia/Tokyo")
    task = _task(schedule)
    assert task is not None and task.crontab is not None
    assert (task.crontab.minute, str(task.crontab.timezone)) == ("*/15", "Asia/Tokyo")
    with org_a.scope():
        services.update_schedule(actor=SYSTEM, schedule=schedule, enabled=False)
    task = _task(schedule)
    assert task is not None and not task.enabled
    with org_a.scope():
        assert Schedule.objects.get(pk=schedule.pk).next_run_at is None
        services.delete_schedule(actor=SYSTEM, schedule=schedule)
    assert _task(schedule) is None


def test_a_failed_write_leaves_no_beat_entry(org_a: OrgFixture, agent_a: Agent) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), org_a.scope():
        schedule = services.create_schedule(actor=SYSTEM, agent=agent_a,
                                            cron_expression="0 * * * *")
        raise Abort
    assert _task(schedule) is None


def test_deleting_the_agent_removes_the_beat_entry(org_a: OrgFixture, agent_a: Agent) -> None:
    schedule = _create(org_a, agent_a)
    with org_a.scope():
        Agent.objects.filter(pk=agent_a.pk).delete()
    assert _task(schedule) is None


@pytest.mark.parametrize("field, kwargs", [
    ("cron", {"cron": "every day"}),
    ("timezone", {"tz": "Europe/Atlantis"}),
    ("input", {"input": ["not", "an", "object"]}),
])
def test_bad_schedule_is_invalid_input_naming_the_field(
        org_a: OrgFixture, agent_a: Agent, field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        _create(org_a, agent_a, **kwargs)
    assert field in caught.value.errors
    with transaction.atomic():
        assert not PeriodicTask.objects.filter(name__startswith="station.schedule:").exists()


def test_a_key_that_may_write_agents_but_not_run_them_cannot_schedule_runs(
        org_a: OrgFixture, agent_a: Agent) -> None:
    key = org_a.key_object(org_a.key(scopes=["agents.read", "agents.write"]))
    with pytest.raises(AccessDenied), org_a.scope():
        services.create_schedule(actor=Principal.for_api_key(key), agent=agent_a,
                                 cron_expression="0 * * * *")


def test_beat_without_an_org_sees_its_entries_but_no_tenant_rows(
        org_a: OrgFixture, agent_a: Agent) -> None:
    schedule = _create(org_a, agent_a)
    with transaction.atomic():  # no org scope, as beat runs: app role, FORCE RLS
        assert Schedule.all_orgs.filter(pk=schedule.pk).count() == 0
        assert Agent.all_orgs.count() == 0
        assert PeriodicTask.objects.filter(name=schedule.periodic_task_name).exists()


def _call(fx: OrgFixture, schedule: Schedule, fire_time: str | None) -> dict[str, Any]:
    result: dict[str, Any] = tasks.fire_schedule(org_id=str(fx.org.pk),
                                                 schedule_id=str(schedule.pk),
                                                 fire_time=fire_time)
    return result


def test_a_tick_starts_one_run_and_a_duplicate_tick_does_not_start_another(
        org_a: OrgFixture, agent_a: Agent, no_broker: dict[str, list[Any]],
        django_capture_on_commit_callbacks: Any) -> None:
    schedule = _create(org_a, agent_a, input={"question": "time?"})
    fire_time = "2026-03-30T07:00:00+00:00"
    with django_capture_on_commit_callbacks(execute=True):
        first = _call(org_a, schedule, fire_time)
        duplicate = _call(org_a, schedule, "2026-03-30T07:00:40+00:00")  # same minute
    assert first["created"] is True and duplicate["created"] is False
    assert first["run_id"] == duplicate["run_id"]
    with org_a.scope():
        runs = list(Run.objects.all())
        schedule.refresh_from_db()
    assert len(runs) == 1
    run = runs[0]
    assert (run.trigger, run.trigger_ref, run.input) == ("schedule", str(schedule.pk),
                                                         {"question": "time?"})
    assert run.idempotency_key == f"schedule:{schedule.pk}:2026-03-30T07:00Z"
    assert schedule.last_run_id == run.pk
    assert schedule.last_run_at == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert no_broker["runs"] == [(str(org_a.org.pk), str(run.pk))]
    # The next minute's tick is a new fire time: a new run.
    assert _call(org_a, schedule, "2026-03-30T07:01:00+00:00")["created"] is True


def test_disabled_or_deleted_schedule_starts_nothing_and_orphans_are_cleaned(
        org_a: OrgFixture, agent_a: Agent) -> None:
    schedule = _create(org_a, agent_a, enabled=False)
    assert _call(org_a, schedule, None) == {"skipped": "disabled"}
    with org_a.scope():
        Schedule.objects.filter(pk=schedule.pk).update(enabled=True)
        # A row removed without the service (as a raw cascade would): beat entry orphaned.
        Schedule.objects.filter(pk=schedule.pk)._raw_delete("default")
    assert _task(schedule) is not None
    assert _call(org_a, schedule, None) == {"skipped": "no such schedule"}
    assert _task(schedule) is None
    with org_a.scope():
        assert Run.objects.count() == 0


def test_a_schedule_whose_agent_cannot_run_records_the_error(org_a: OrgFixture) -> None:
    agent = make_agent(org_a, name="strict", input_schema={
        "type": "object", "required": ["question"],
        "properties": {"question": {"type": "string"}}})
    schedule = _create(org_a, agent, input={})
    result = _call(org_a, schedule, "2026-03-30T07:00:00+00:00")
    assert "error" in result
    with org_a.scope():
        schedule.refresh_from_db()
        assert Run.objects.count() == 0
    assert schedule.last_error and schedule.last_run_id is None


def test_a_schedule_of_org_a_cannot_be_fired_into_org_b(
        org_a: OrgFixture, org_b: OrgFixture, agent_a: Agent) -> None:
    schedule = _create(org_a, agent_a)
    # A forged beat message naming org B with org A's schedule id finds nothing there.
    result = tasks.fire_schedule(org_id=str(org_b.org.pk), schedule_id=str(schedule.pk))
    assert result == {"skipped": "no such schedule"}
    with org_b.scope():
        assert Run.objects.count() == 0
    with org_a.scope():
        assert Run.objects.count() == 0


def test_station_scheduler_stamps_the_fire_minute_on_schedule_messages() -> None:
    sent: list[dict[str, Any]] = []

    class Entry:
        task = "station.triggers.fire_schedule"
        kwargs = {"org_id": "o", "schedule_id": "s"}

    def fake_apply(self: Any, entry: Any, producer: Any = None, advance: bool = True,
                   **kwargs: Any) -> None:
        sent.append(entry.kwargs)

    scheduler = StationScheduler.__new__(StationScheduler)
    original = StationScheduler.__mro__[1].apply_async
    try:
        StationScheduler.__mro__[1].apply_async = fake_apply  # type: ignore[method-assign]
        scheduler.apply_async(Entry(), advance=False)
    finally:
        StationScheduler.__mro__[1].apply_async = original  # type: ignore[method-assign]
    assert sent[0]["org_id"] == "o" and sent[0]["schedule_id"] == "s"
    stamped = datetime.fromisoformat(sent[0]["fire_time"])
    assert stamped.second == 0 and stamped.tzinfo is not None
    assert Entry.kwargs == {"org_id": "o", "schedule_id": "s"}  # the entry is not mutated
    assert firing.idempotency_key("s", stamped) == firing.idempotency_key(
        "s", stamped.replace(second=59))
