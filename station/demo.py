"""The demo organization `station up` creates on first start, and its login.

The demo owner's generated password is kept in the data directory (mode 0600) so every
`station up` can print it; it is a local convenience, never used with an external database.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station import datadir

DEMO_SLUG = "demo"
DEMO_EMAIL = "admin@demo.station.local"


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str


def ensure_demo() -> DemoLogin:
    from tenants import platform, services
    from tenants.authz import Principal
    from tenants.models import User

    path = datadir.data_dir() / "demo-login.json"
    if path.exists():
        stored = json.loads(path.read_text())
        login = DemoLogin(stored["email"], stored["password"])
    else:
        login = DemoLogin(DEMO_EMAIL, secrets.token_urlsafe(12))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"email": login.email, "password": login.password}, handle)
    if platform.org_by_slug(DEMO_SLUG) is None:
        created = services.create_organization(
            actor=Principal.system("station up"),
            slug=DEMO_SLUG,
            name="Demo",
            owner_email=login.email,
        )
        seed_demo_agent(created.organization.pk)
    user = User.objects.get(email=login.email)
    if not user.check_password(login.password):
        user.set_password(login.password)
        user.save(update_fields=["password"])
    return login


DEMO_SCENARIO = [
    {"tool_calls": [{"name": "clock__get_current_time",
                     "arguments": {"timezone": "Europe/Paris"}}]},
    {"content": "Here is the time in Paris, from the clock MCP server: {last_tool_result}"},
]


def seed_demo_agent(org_id: Any) -> str | None:
    """In the demo's dev environment: a scripted model provider, the `mcp-server-time` MCP
    server (discovered now; it holds no secrets) and a published agent that calls it. Returns
    why the agent was skipped, or None. The scripted provider replays a fixed scenario, so the
    demo runs without any LLM account; it is labelled as scripted everywhere."""
    from django.db import transaction

    from station.agents import services as agents
    from station.providers import services as providers
    from station.tools import discovery
    from station.tools import services as tools
    from tenants.authz import Principal
    from tenants.context import org_context
    from tenants.models import Environment

    actor = Principal.system("station up (demo)")
    command = shutil.which("mcp-server-time") or str(Path(sys.executable).parent /
                                                      "mcp-server-time")
    with org_context(org_id):
        with transaction.atomic():
            env = Environment.objects.get(slug="dev")
            providers.create_provider(actor=actor, environment=env, name="scripted",
                                      kind="scripted")
            server = tools.create_mcp_server(
                actor=actor, environment=env, name="clock", transport="stdio",
                command=command, description="Current time and time-zone conversion "
                                             "(mcp-server-time)")
        found = discovery.discover(server, actor=actor, purpose="demo set-up")
        if not found.ok:
            return f"the clock MCP server could not be discovered: {found.error}"
        with transaction.atomic():
            agent = agents.create_agent(
                actor=actor, environment=env, name="clock-bot", provider="scripted",
                model="scripted-demo", description="Demo: tells the time in Paris "
                "(scripted model, real MCP tool call)",
                instructions="You tell people the current time. Use the clock tools.",
                parameters={"scenario": DEMO_SCENARIO},
                allowed_tools=["clock/get_current_time", "clock/convert_time"],
                input_schema={"type": "object",
                              "properties": {"message": {"type": "string"}}})
            agents.publish_agent(actor=actor, agent=agent, note="demo")
    return None
