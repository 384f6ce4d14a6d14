"""Reads of agents and versions that are more than a one-line filter."""

from __future__ import annotations

from django.db.models import QuerySet

from station.agents.models import Agent, AgentVersion
from tenants.models import Environment


def latest_version(agent: Agent) -> AgentVersion | None:
    """The newest published version, or None while the agent was never published."""
    return AgentVersion.objects.filter(agent=agent).order_by("-number").first()


def version_by_number(agent: Agent, number: int) -> AgentVersion | None:
    return AgentVersion.objects.filter(agent=agent, number=number).first()


def agents_in(environment: Environment) -> QuerySet[Agent]:
    return Agent.objects.filter(environment=environment).order_by("name")
