"""The `mcp_servers` bundle kind: export (references as text), validation, apply (idempotent,
prune), and promotion, where a server referencing a secret the target lacks is reported as
blocked while the rest is promoted."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from audit.models import AuditEvent
from station.core.errors import InvalidInput
from station.envcode import services
from station.envcode.bundle import MANIFEST
from station.tools import services as tools
from station.tools.models import McpServer
from station.vault import services as vault
from tests.envcode.conftest import env
from tests.fixtures import SYSTEM

pytestmark = pytest.mark.django_db

PATH = "mcp_servers.yaml"


def _add(slug: str, name: str, **config: Any) -> McpServer:
    return tools.create_mcp_server(actor=SYSTEM, environment=env(slug), name=name, **config)


def _seed_servers() -> None:
    _add("staging", "github", transport="stdio", command="/opt/mcp/github",
         args=["--read-only"], env={"TOKEN": "${secret:GITHUB_TOKEN}",
                                    "API": "${var:API_URL}"}, description="GitHub tools")
    _add("staging", "openai", transport="http", url="https://mcp.example/${var:LOG_LEVEL}",
         headers={"Authorization": "Bearer ${secret:OPENAI_KEY}"})


def _servers(slug: str) -> dict[str, dict[str, Any]]:
    return {s.name: {"transport": s.transport, "command": s.command, "args": s.args,
                     "env": s.env, "url": s.url, "headers": s.headers,
                     "description": s.description, "enabled": s.enabled,
                     "reuse_sessions": s.reuse_sessions}
            for s in McpServer.objects.filter(environment=env(slug))}


def test_export_keeps_references_as_text_and_skips_empty_fields(seeded):
    with seeded.scope():
        assert PATH not in services.export_bundle(actor=SYSTEM, environment=env("staging"))
        _seed_servers()
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        assert services.export_bundle(actor=SYSTEM, environment=env("staging")) == files
    assert list(files) == [MANIFEST, PATH, "secrets.yaml", "variables.yaml"]
    assert yaml.safe_load(files[PATH]) == {
        "github": {"transport": "stdio", "command": "/opt/mcp/github", "args": ["--read-only"],
                   "env": {"API": "${var:API_URL}", "TOKEN": "${secret:GITHUB_TOKEN}"},
                   "description": "GitHub tools", "enabled": True},
        "openai": {"transport": "http", "url": "https://mcp.example/${var:LOG_LEVEL}",
                   "headers": {"Authorization": "Bearer ${secret:OPENAI_KEY}"},
                   "enabled": True},
    }
    assert "staging-secret" not in "".join(files.values())


def test_apply_creates_what_it_can_reports_blocked_and_is_idempotent(seeded):
    with seeded.scope():
        _seed_servers()
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        plan = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert plan.applied
        assert [(c.kind, c.name, c.action) for c in plan.actionable
                if c.kind == "mcp_servers"] == [("mcp_servers", "github", "add")]
        blocked = [c for c in plan.missing if c.kind == "mcp_servers"]
        assert [c.name for c in blocked] == ["openai"]
        assert "OPENAI_KEY" in blocked[0].note and "missing in the target" in blocked[0].note
        assert _servers("prod") == {"github": _servers("staging")["github"]}
        assert AuditEvent.objects.filter(action="mcp_server.created").count() == 3

        again = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert again.empty and not again.applied
        assert AuditEvent.objects.filter(action="mcp_server.created").count() == 3

        vault.set_secret(actor=SYSTEM, environment=env("prod"), name="OPENAI_KEY", value="x")
        third = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert [(c.name, c.action) for c in third.actionable] == [("openai", "add")]
        assert _servers("prod") == _servers("staging")
        assert services.export_bundle(actor=SYSTEM, environment=env("prod"))[PATH] == files[PATH]


def test_changes_update_and_removal_needs_prune(seeded):
    with seeded.scope():
        _seed_servers()
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        doc = yaml.safe_load(files[PATH])
        doc["github"]["args"] = ["--read-only", "--verbose"]
        doc["github"]["enabled"] = False
        del doc["openai"]
        changed = {**files, PATH: yaml.safe_dump(doc)}
        plan = services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=changed)
        assert [(c.name, c.action) for c in plan.actionable if c.kind == "mcp_servers"] == [
            ("github", "change")]
        github = McpServer.objects.get(environment=env("staging"), name="github")
        assert github.args == ["--read-only", "--verbose"] and github.enabled is False
        assert McpServer.objects.filter(environment=env("staging"), name="openai").exists()

        pruned = services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=changed,
                                       prune=True, dry_run=True)
        assert [(c.name, c.action) for c in pruned.actionable if c.kind == "mcp_servers"] == [
            ("openai", "remove")]
        services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=changed,
                              prune=True)
        assert set(_servers("staging")) == {"github"}
        assert AuditEvent.objects.filter(action="mcp_server.deleted").count() == 1


def test_session_reuse_travels_only_when_on_and_an_old_bundle_turns_it_off(seeded):
    with seeded.scope():
        _seed_servers()
        old = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        assert "reuse_sessions" not in yaml.safe_load(old[PATH])["github"]  # off: left out
        github = McpServer.objects.get(environment=env("staging"), name="github")
        tools.update_mcp_server(actor=SYSTEM, server=github, reuse_sessions=True)
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        assert yaml.safe_load(files[PATH])["github"]["reuse_sessions"] is True
        assert "reuse_sessions" not in yaml.safe_load(files[PATH])["openai"]

        # Applied elsewhere, the flag arrives; applied again, nothing changes.
        services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert _servers("prod")["github"]["reuse_sessions"] is True
        assert services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files).empty

        # A bundle written before the flag existed (no key) still applies, and means off.
        plan = services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=old,
                                     dry_run=True)
        (change,) = [c for c in plan.actionable if c.kind == "mcp_servers"]
        assert (change.name, change.action) == ("github", "change")
        assert '"reuse_sessions": true' in (change.before or "")
        assert '"reuse_sessions": false' in (change.after or "")
        services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=old)
        assert _servers("staging")["github"]["reuse_sessions"] is False
        event = AuditEvent.objects.filter(action="mcp_server.updated").latest("occurred_at")
        assert event.changes == {"reuse_sessions": {"from": True, "to": False}}


def test_promotion_carries_the_session_reuse_flag(seeded):
    with seeded.scope():
        _add("staging", "clock", transport="stdio", command="/opt/mcp/clock",
             reuse_sessions=True)
        _add("prod", "clock", transport="stdio", command="/opt/mcp/clock")
        plan = services.promote(actor=SYSTEM, source=env("staging"), target=env("prod"),
                                kinds=["mcp_servers"])
        assert [(c.name, c.action) for c in plan.changes] == [("clock", "change")]
        assert _servers("prod")["clock"]["reuse_sessions"] is True


def test_a_bundle_without_the_file_leaves_servers_alone_even_with_prune(seeded):
    with seeded.scope():
        _seed_servers()
        files = {MANIFEST: "format_version: 1\n", "variables.yaml": "A: b\n"}
        plan = services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=files,
                                     prune=True, dry_run=True)
        assert not [c for c in plan.changes if c.kind == "mcp_servers"]
        empty = services.apply_bundle(actor=SYSTEM, environment=env("staging"),
                                      files={MANIFEST: "format_version: 1\n", PATH: ""},
                                      prune=True, dry_run=True)
        assert {(c.name, c.action) for c in empty.changes} == {
            ("github", "remove"), ("openai", "remove")}


@pytest.mark.parametrize(("text", "field", "message"), [
    ("- github\n", PATH, "must be a mapping of server NAME"),
    ("bad-name: {transport: stdio, command: x}\n", f"{PATH}: bad-name", "invalid name"),
    ("gh: stdio\n", f"{PATH}: gh", "must be a mapping"),
    ("gh: {transport: stdio, command: x, colour: red}\n", f"{PATH}: gh.colour",
     "unknown field"),
    ("gh: {command: x}\n", f"{PATH}: gh.transport", "required: stdio or http"),
    ("gh: {transport: stdio}\n", f"{PATH}: gh.command", "needs the command"),
    ("gh: {transport: http}\n", f"{PATH}: gh.url", "needs its url"),
    ("gh: {transport: stdio, command: x, args: [1]}\n", f"{PATH}: gh.args",
     "list of text"),
    ("gh: {transport: stdio, command: x, env: {PORT: 8080}}\n", f"{PATH}: gh.env.PORT",
     "must be text"),
    ("gh: {transport: stdio, command: x, env: [a]}\n", f"{PATH}: gh.env", "mapping"),
    ("gh: {transport: stdio, command: x, enabled: 'yes'}\n", f"{PATH}: gh.enabled",
     "true or false"),
    ("gh: {transport: stdio, command: x, reuse_sessions: 1}\n", f"{PATH}: gh.reuse_sessions",
     "true or false"),
    ("gh: {transport: stdio, command: x, env: {T: '${secret:bad-name}'}}\n", f"{PATH}: gh",
     "bad reference"),
    ("gh: {transport: stdio, command: x, env: {T: '${vault:TOKEN}'}}\n", f"{PATH}: gh",
     "bad reference"),
    ("gh: {transport: stdio, command: x, env: {T: '${secret:TOKEN'}}\n", f"{PATH}: gh",
     "bad reference"),
])
def test_invalid_files_name_the_entry_and_change_nothing(seeded, text, field, message):
    with seeded.scope(), pytest.raises(InvalidInput) as exc:
        services.apply_bundle(actor=SYSTEM, environment=env("staging"),
                              files={MANIFEST: "format_version: 1\n", PATH: text})
    assert any(message in m for m in exc.value.errors[field]), exc.value.errors
    with seeded.scope():
        assert not McpServer.objects.exists()


def test_promotion_creates_and_updates_and_blocks_on_missing_secrets(seeded):
    with seeded.scope():
        _seed_servers()
        _add("prod", "prod_only", transport="stdio", command="/opt/mcp/prod")
        plan = services.promote(actor=SYSTEM, source=env("staging"), target=env("prod"))
        mcp = [(c.name, c.action) for c in plan.changes if c.kind == "mcp_servers"]
        assert mcp == [("github", "add"), ("openai", "missing")]
        note = next(c.note for c in plan.missing if c.name == "openai")
        assert note.startswith("not created: references secret OPENAI_KEY")
        assert set(_servers("prod")) == {"github", "prod_only"}  # never removed
        assert _servers("prod")["github"]["env"]["TOKEN"] == "${secret:GITHUB_TOKEN}"
        # The variable the server references arrived (empty) with the same promotion.
        event = AuditEvent.objects.get(action="environment.promoted")
        assert event.changes["names"]["mcp_servers"] == {"add": ["github"],
                                                         "missing": ["openai"]}

        tools.update_mcp_server(actor=SYSTEM, server=McpServer.objects.get(
            environment=env("staging"), name="github"), args=["--read-write"])
        vault.set_secret(actor=SYSTEM, environment=env("prod"), name="OPENAI_KEY", value="x")
        second = services.promote(actor=SYSTEM, source=env("staging"), target=env("prod"),
                                  kinds=["mcp_servers"])
        assert [(c.name, c.action) for c in second.changes] == [
            ("github", "change"), ("openai", "add")]
        assert _servers("prod")["github"]["args"] == ["--read-write"]
        assert services.promote(actor=SYSTEM, source=env("staging"), target=env("prod"),
                                kinds=["mcp_servers"]).empty


def test_promotion_needs_tools_manage_on_the_target(seeded):
    from station.core.errors import AccessDenied
    from tenants import services as tenant_services
    from tenants.authz import Principal
    from tenants.models import Membership

    with seeded.scope():
        _seed_servers()
        membership = seeded.add_member("dev@acme.example", "developer")
        tenant_services.set_environment_role(actor=SYSTEM, membership=membership,
                                             environment=env("prod"), role="viewer")
        user = Membership.objects.get(pk=membership.pk).user
        with pytest.raises(AccessDenied):
            services.promote(actor=Principal.for_user(user), source=env("staging"),
                             target=env("prod"), kinds=["mcp_servers"])
        assert not McpServer.objects.filter(environment=env("prod")).exists()
