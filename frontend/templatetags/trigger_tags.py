"""`{% agent_triggers agent %}`: the small Triggers section of the agent detail page (counts
and links), so that page's view needs no change."""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Q

from station.agents.models import Agent
from station.triggers.models import InboundWebhook, OutboundWebhook, Schedule
from tenants.authz import has_permission

register = template.Library()


@register.inclusion_tag("console/triggers/_agent_section.html", takes_context=True)
def agent_triggers(context: template.Context, agent: Agent) -> dict[str, Any]:
    request = context["request"]
    env = agent.environment
    # Rendered inside org_view: the org scope is active, so these counts stay in the org.
    return {
        "agent": agent,
        "current_org": context.get("current_org"),
        "schedules": Schedule.objects.filter(agent=agent).count(),
        "enabled_schedules": Schedule.objects.filter(agent=agent, enabled=True).count(),
        "inbound": InboundWebhook.objects.filter(agent=agent).count(),
        "outbound": OutboundWebhook.objects.filter(
            Q(agent=agent) | Q(agent__isnull=True, environment=env)).count(),
        "can_add": all(has_permission(request.principal, p, request.org, env)
                       for p in ("agents.write", "agents.run")),
    }
