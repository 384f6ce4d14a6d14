"""The demo organization comes with a runnable agent: scripted model, real MCP tool."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from station.agents.models import Agent
from station.demo import seed_demo_agent
from station.runs import engine, services
from station.runs.models import Run, RunStep
from station.tools.models import Tool
from tenants.context import org_context
from tests.fixtures import SYSTEM


def test_the_demo_agent_runs_end_to_end(committed_db: None, make_org: Any, settings: Any,
                                        monkeypatch: Any) -> None:
    from station.runs import lifecycle

    monkeypatch.setattr(lifecycle, "_send", lambda org, run: None)
    settings.VAULT_REVEAL_ALLOWED = True
    fx = make_org("demo-test")
    assert seed_demo_agent(fx.org.pk) is None
    with org_context(fx.org.pk):
        with transaction.atomic():
            agent = Agent.objects.get(name="clock-bot")
            assert agent.latest_version == 1
            assert Tool.objects.filter(name="get_current_time").exists()
            run, _ = services.start_run(actor=SYSTEM, agent=agent,
                                        input={"message": "What time is it?"})
        assert engine.execute(run.pk) == Run.SUCCEEDED
        with transaction.atomic():
            run = Run.objects.get(pk=run.pk)
            tool_step = RunStep.objects.get(run=run, kind="tool")
    assert "Europe/Paris" in tool_step.output["text"]
    assert run.output.startswith("Here is the time in Paris")
