"""Fixtures for run tests: an org with a scripted provider, real MCP servers (stdio), and
agents published straight from a definition. Runs execute in-process (`engine.execute`), on
committed data, because the heartbeat thread uses its own connection."""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from station.agents.models import Agent, AgentVersion
from station.providers.models import ModelProvider
from station.tools import discovery
from station.tools import services as tools
from station.tools.models import McpServer
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture

TIME_SERVER = str(Path(sys.executable).parent / "mcp-server-time")
TOKEN = "tok-run-7d1e-do-not-leak"

# A real MCP server (the SDK's MCPServer, in its own process) with tools that misbehave on
# purpose: crash the process, hang, fail, leak the secret it was given, print garbage.
TRICKY_SERVER = '''
import os, sys, time
from mcp.server.mcpserver import MCPServer

server = MCPServer("tricky")


@server.tool(description="Echo a message back.")
def echo(message: str) -> str:
    return message


@server.tool(description="Return the token this server was started with.")
def leak() -> str:
    return "the token is " + os.environ.get("TRICKY_TOKEN", "")


@server.tool(description="Exit the process mid-call.")
def crash() -> str:
    os._exit(7)


@server.tool(description="Never answer.")
def hang() -> str:
    time.sleep(600)
    return "late"


@server.tool(description="Fail with an error result.")
def fail() -> str:
    raise ValueError("the backend said no")


@server.tool(description="Write garbage instead of a JSON-RPC answer.")
def garbage() -> str:
    sys.stdout.write("this is not json\\n")
    sys.stdout.flush()
    time.sleep(600)
    return "never"


server.run()
'''


@dataclass
class RunWorld:
    fx: OrgFixture
    env: Environment
    servers: dict[str, McpServer]

    def agent(self, name: str, scenario: list[dict[str, Any]], *,
              tools: list[str] | None = None, input_schema: dict[str, Any] | None = None,
              provider: str = "scripted", model: str = "scripted-1",
              instructions: str = "You are a test agent.", **limits: Any) -> Agent:
        """An agent with one published version (written directly: publishing has its own
        tests in tests/agents)."""
        definition = {
            "description": f"{name} (test)", "instructions": instructions,
            "provider": provider, "model": model,
            "parameters": {"scenario": scenario} if scenario else {},
            "allowed_tools": tools or [],
            "input_schema": input_schema or {}, "max_steps": limits.get("max_steps", 10),
            "max_tokens": limits.get("max_tokens", 100_000),
            "max_seconds": limits.get("max_seconds", 120)}
        with self.fx.scope(), _atomic():
            agent = Agent.objects.create(organization=self.fx.org, environment=self.env,
                                         name=name, latest_version=1, **definition)
            text = json.dumps(definition, sort_keys=True)
            AgentVersion.objects.create(organization=self.fx.org, agent=agent, number=1,
                                        definition=definition,
                                        content_hash=hashlib.sha256(text.encode()).hexdigest())
        return agent


def _atomic() -> Any:
    from django.db import transaction

    return transaction.atomic()


@pytest.fixture(autouse=True)
def worker_settings(settings: Any) -> None:
    settings.VAULT_REVEAL_ALLOWED = True  # the run loop plays the worker here
    settings.MCP_TIMEOUT_SECONDS = 20
    settings.MCP_CALL_TIMEOUT_SECONDS = 3
    settings.RUN_HEARTBEAT_SECONDS = 1
    settings.CELERY_TASK_ALWAYS_EAGER = False


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Task sends, recorded instead of going to a broker (tests drive the engine)."""
    from station.runs import lifecycle

    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(lifecycle, "_send", lambda org, run: calls.append((str(org), str(run))))
    return calls


@pytest.fixture(scope="session")
def tricky_server_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tricky_server.py"
        path.write_text(TRICKY_SERVER)
        yield str(path)


@pytest.fixture
def world(committed_db: None, make_org: Callable[..., OrgFixture], sent: Any,
          tricky_server_path: str) -> RunWorld:
    from station.vault.services import set_secret

    fx = make_org("runco")
    with fx.scope():
        with _atomic():
            env = Environment.objects.get(slug="dev")
            ModelProvider.objects.create(organization=fx.org, environment=env, name="scripted",
                                         kind=ModelProvider.SCRIPTED)
            set_secret(actor=SYSTEM, environment=env, name="TRICKY_TOKEN", value=TOKEN)
            clock = tools.create_mcp_server(actor=SYSTEM, environment=env, name="clock",
                                            transport="stdio", command=TIME_SERVER)
            tricky = tools.create_mcp_server(
                actor=SYSTEM, environment=env, name="tricky", transport="stdio",
                command=sys.executable, args=[tricky_server_path],
                env={"TRICKY_TOKEN": "${secret:TRICKY_TOKEN}"})
        for server in (clock, tricky):
            _discover_once(server)
    return RunWorld(fx, env, {"clock": clock, "tricky": tricky})


# What the real servers listed, by server name: listed once per test session (a cold start
# costs ~1.3 s) and recorded for each test's servers, pinned by the same hashes.
_LISTED: dict[str, list[Any]] = {}


def _discover_once(server: McpServer) -> None:
    from django.db import transaction

    if server.name not in _LISTED:
        _LISTED[server.name], _ = discovery.list_tools(server, actor=SYSTEM,
                                                       purpose="test discovery")
    with transaction.atomic():
        tools.record_discovery(actor=SYSTEM, server=server, tools=_LISTED[server.name])


@pytest.fixture(autouse=True)
def no_warm_sessions_left() -> Iterator[None]:
    """Each test starts and ends with no warm MCP session in this process (a stdio server
    kept warm would otherwise outlive its test)."""
    from station.runs.mcp_pool import warm

    warm.close_all()
    yield
    warm.close_all()
