"""Processes refuse to serve tenants through a database role that could bypass RLS."""

from __future__ import annotations

import pytest

from station.cli import main
from station.core.dbrole import unsafe_role_reason
from station.testing.pytest_plugin import as_owner


def test_the_app_role_is_safe(db):
    assert unsafe_role_reason() is None


def test_the_owner_role_is_reported_unsafe(committed_db):
    with as_owner():
        reason = unsafe_role_reason()
    assert reason is not None and "owns" in reason


def test_readyz_is_unavailable_when_connected_as_the_owner(committed_db, client):
    with as_owner():
        body = client.get("/readyz").json()
    assert body["checks"]["database"] == "unsafe role: it can bypass row-level security"


@pytest.mark.parametrize("owner_url", [None, "postgres://app:pw@db:5432/station"])
def test_migrate_refuses_to_run_as_the_app_role(monkeypatch, capsys, owner_url):
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@db:5432/station")
    if owner_url:
        monkeypatch.setenv("DATABASE_OWNER_URL", owner_url)
    else:
        monkeypatch.delenv("DATABASE_OWNER_URL", raising=False)
    assert main(["migrate"]) == 2
    assert "DATABASE_OWNER_URL" in capsys.readouterr().err
