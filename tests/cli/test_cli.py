"""The `station` operator commands, run in-process against the test database."""

from __future__ import annotations

import pytest

from station.cli import main
from tenants import platform
from tenants.context import org_scope
from tenants.models import ApiKey, Environment, Membership


def test_org_create_prints_owner_password_and_seeds_environments(db, capsys):
    assert (
        main(["org", "create", "initech", "--name", "Initech", "--owner", "boss@initech.example"])
        == 0
    )
    out = capsys.readouterr().out
    assert "Created organization initech" in out
    assert "One-time password" in out
    org = platform.org_by_slug("initech")
    assert org is not None
    with org_scope(org.id):
        assert sorted(Environment.objects.values_list("slug", flat=True)) == [
            "dev",
            "prod",
            "staging",
        ]
        assert Membership.objects.get().role == "owner"


def test_org_create_duplicate_slug_is_refused(db, org_a, capsys):
    assert main(["org", "create", "acme", "--name", "Other", "--owner", "x@y.example"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_org_create_bad_slug_is_refused(db, capsys):
    assert main(["org", "create", "Bad Slug!", "--name", "X", "--owner", "x@y.example"]) == 2
    assert "slug" in capsys.readouterr().err


def test_apikey_create_prints_key_once_and_it_authenticates(db, org_a, capsys, client):
    assert (
        main(
            [
                "apikey",
                "create",
                "--org",
                "acme",
                "--name",
                "ci",
                "--role",
                "viewer",
                "--env",
                "prod",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    key = captured.out.strip()
    assert key.startswith("stk_")
    assert "shown once" in captured.err
    with org_a.scope():
        stored = ApiKey.objects.get(name="ci")
        assert stored.environment is not None and stored.environment.slug == "prod"
        assert key not in str(stored.__dict__)
    r = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert r.status_code == 200
    assert r.json()["organization"]["slug"] == "acme"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--org", "nope", "--name", "k", "--role", "viewer"], "no organization"),
        (["--org", "acme", "--name", "k", "--role", "viewer", "--env", "nope"], "no environment"),
        (["--org", "acme", "--name", "k", "--role", "emperor"], "Unknown role"),
    ],
)
def test_apikey_create_bad_input(db, org_a, capsys, args, message):
    assert main(["apikey", "create", *args]) != 0
    assert message in capsys.readouterr().err
    with org_a.scope():
        assert not ApiKey.objects.filter(name="k").exists()


def test_audit_verify_for_one_org(db, org_a, capsys):
    assert main(["audit", "verify", "--org", "acme"]) == 0
    assert "acme: ok: 1 events verified" in capsys.readouterr().out


def test_audit_verify_unknown_org(db, capsys):
    assert main(["audit", "verify", "--org", "nope"]) == 1
