"""An environment ready for agents: a scripted and an OpenAI-compatible provider, and an MCP
server `clock` with two discovered tools, in staging (and prod, for cross-environment tests)."""

from __future__ import annotations

from typing import Any

import pytest

from station.agents import services
from station.agents.models import Agent
from station.providers.models import ModelProvider
from station.tools import services as tools
from station.tools.hashing import ToolDefinition
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture

TOOLS = [ToolDefinition("get_current_time", "Current time",
                        {"type": "object", "properties": {"timezone": {"type": "string"}}}),
         ToolDefinition("convert_time", "Convert a time between zones")]
SCENARIO = [{"content": "It is noon."}]


def env(slug: str) -> Environment:
    return Environment.objects.select_related("organization").get(slug=slug)


def prepare(fx: OrgFixture, slug: str) -> Environment:
    with fx.scope():
        environment = env(slug)
        ModelProvider.objects.create(environment=environment, name="scripted", kind="scripted")
        ModelProvider.objects.create(environment=environment, name="openai-main",
                                     kind="openai", base_url="https://llm.example/v1")
        server = tools.create_mcp_server(actor=SYSTEM, environment=environment, name="clock",
                                         transport="stdio", command="mcp-server-time")
        tools.record_discovery(actor=SYSTEM, server=server, tools=TOOLS)
    return environment


@pytest.fixture
def ready(org_a: OrgFixture) -> OrgFixture:
    prepare(org_a, "staging")
    return org_a


def make_agent(name: str = "clock-bot", slug: str = "staging", **fields: Any) -> Agent:
    defaults: dict[str, Any] = {"provider": "scripted", "model": "scripted-1",
                                "parameters": {"scenario": SCENARIO},
                                "allowed_tools": ["clock/get_current_time"]}
    return services.create_agent(actor=SYSTEM, environment=env(slug), name=name,
                                 **{**defaults, **fields})
