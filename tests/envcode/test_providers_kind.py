"""The `providers` bundle kind: export with references as text, validation (no keys in a
bundle), apply (idempotent, prune), and promotion that reports connections blocked on a
secret the target lacks."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from audit.models import AuditEvent
from station.core.errors import InvalidInput
from station.envcode import services
from station.envcode.bundle import MANIFEST
from station.providers import services as providers
from station.providers.models import ModelProvider
from station.vault import services as vault
from tests.envcode.conftest import env
from tests.fixtures import SYSTEM

pytestmark = pytest.mark.django_db

PATH = "providers.yaml"


def _seed() -> None:
    providers.create_provider(actor=SYSTEM, environment=env("staging"), name="openai",
                              kind="openai", base_url="${var:API_URL}/v1",
                              api_key="${secret:OPENAI_KEY}", timeout_seconds=30)
    providers.create_provider(actor=SYSTEM, environment=env("staging"), name="demo",
                              kind="scripted")


def _connections(slug: str) -> dict[str, dict[str, Any]]:
    return {p.name: {"kind": p.kind, "base_url": p.base_url, "api_key": p.api_key,
                     "timeout_seconds": p.timeout_seconds, "max_retries": p.max_retries}
            for p in ModelProvider.objects.filter(environment=env(slug))}


def test_export_keeps_references_and_skips_defaults(seeded):
    with seeded.scope():
        assert PATH not in services.export_bundle(actor=SYSTEM, environment=env("staging"))
        _seed()
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
    assert yaml.safe_load(files[PATH]) == {
        "demo": {"kind": "scripted"},
        "openai": {"kind": "openai", "base_url": "${var:API_URL}/v1",
                   "api_key": "${secret:OPENAI_KEY}", "timeout_seconds": 30},
    }
    assert "staging-secret" not in "".join(files.values())


def test_apply_creates_reports_blocked_and_is_idempotent(seeded):
    with seeded.scope():
        _seed()
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        plan = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert [(c.name, c.action) for c in plan.changes if c.kind == "providers"] == [
            ("demo", "add"), ("openai", "missing")]
        note = next(c.note for c in plan.missing if c.name == "openai")
        assert "OPENAI_KEY" in note and "missing in the target" in note
        assert set(_connections("prod")) == {"demo"}
        assert services.apply_bundle(actor=SYSTEM, environment=env("prod"),
                                     files=files).empty

        vault.set_secret(actor=SYSTEM, environment=env("prod"), name="OPENAI_KEY", value="x")
        services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert _connections("prod") == _connections("staging")
        assert AuditEvent.objects.filter(action="provider.created").count() == 4


def test_changes_and_prune(seeded):
    with seeded.scope():
        _seed()
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        doc = yaml.safe_load(files[PATH])
        doc["openai"]["max_retries"] = 5
        del doc["demo"]
        changed = {**files, PATH: yaml.safe_dump(doc)}
        plan = services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=changed,
                                     prune=True)
        assert [(c.name, c.action) for c in plan.changes if c.kind == "providers"] == [
            ("demo", "remove"), ("openai", "change")]
        assert _connections("staging") == {"openai": {
            "kind": "openai", "base_url": "${var:API_URL}/v1",
            "api_key": "${secret:OPENAI_KEY}", "timeout_seconds": 30, "max_retries": 5}}


@pytest.mark.parametrize(("text", "field", "message"), [
    ("- openai\n", PATH, "must be a mapping of connection NAME"),
    ("Open_AI: {kind: openai}\n", f"{PATH}: Open_AI", "invalid name"),
    ("openai: openai\n", f"{PATH}: openai", "must be a mapping"),
    ("openai: {kind: openai, model: gpt}\n", f"{PATH}: openai.model", "unknown field"),
    ("openai: {kind: gemini}\n", f"{PATH}: openai.kind", "Choose one of"),
    ("openai: {kind: openai, api_key: sk-live-123456789}\n", f"{PATH}: openai.api_key",
     "Do not paste an API key"),
    ("openai: {kind: openai, base_url: 'ftp://x'}\n", f"{PATH}: openai.base_url",
     "http(s) URL"),
    ("openai: {kind: openai, timeout_seconds: '60'}\n", f"{PATH}: openai.timeout_seconds",
     "whole number"),
    ("demo: {kind: scripted, api_key: '${secret:OPENAI_KEY}'}\n", f"{PATH}: demo.api_key",
     "calls no API"),
])
def test_invalid_files_name_the_entry_and_change_nothing(seeded, text, field, message):
    with seeded.scope(), pytest.raises(InvalidInput) as exc:
        services.apply_bundle(actor=SYSTEM, environment=env("staging"),
                              files={MANIFEST: "format_version: 1\n", PATH: text})
    assert any(message in m for m in exc.value.errors[field]), exc.value.errors
    assert "sk-live-123456789" not in repr(exc.value.errors)
    with seeded.scope():
        assert not ModelProvider.objects.exists()


def test_promotion_creates_and_never_removes(seeded):
    with seeded.scope():
        _seed()
        providers.create_provider(actor=SYSTEM, environment=env("prod"), name="prod-only",
                                  kind="scripted")
        plan = services.promote(actor=SYSTEM, source=env("staging"), target=env("prod"))
        assert [(c.name, c.action) for c in plan.changes if c.kind == "providers"] == [
            ("demo", "add"), ("openai", "missing")]
        assert set(_connections("prod")) == {"demo", "prod-only"}
