"""`station env export` and `station env apply`, in-process against the test database."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from audit.models import AuditEvent
from station.cli import main
from station.vault.models import Variable

pytestmark = pytest.mark.django_db


def _variables(fx, slug):
    with fx.scope():
        return dict(Variable.objects.filter(environment__slug=slug).values_list("name", "value"))


def test_export_then_apply_round_trips(seeded, tmp_path: Path, capsys):
    bundle = tmp_path / "staging"
    assert main(["env", "export", "acme/staging", str(bundle)]) == 0
    assert sorted(p.name for p in bundle.iterdir()) == [
        "secrets.yaml", "station-environment.yaml", "variables.yaml"]
    assert yaml.safe_load((bundle / "secrets.yaml").read_text()) == ["GITHUB_TOKEN", "OPENAI_KEY"]
    capsys.readouterr()

    assert main(["env", "apply", str(bundle), "--to", "acme/prod", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "+ API_URL = 'https://staging.example'" in out
    assert "~ LOG_LEVEL: 'warning' -> 'debug'" in out
    assert "! OPENAI_KEY  (missing value — set it before use)" in out
    assert "Dry run: 3 changes would be made; nothing was changed." in out
    assert _variables(seeded, "prod") == {"LOG_LEVEL": "warning"}

    assert main(["env", "apply", str(bundle), "--to", "acme/prod"]) == 0
    assert "Applied 3 changes." in capsys.readouterr().out
    assert _variables(seeded, "prod") == _variables(seeded, "staging")

    with seeded.scope():
        events = AuditEvent.objects.count()
    assert main(["env", "apply", str(bundle), "--to", "acme/prod"]) == 0
    assert "Nothing to change." in capsys.readouterr().out
    with seeded.scope():
        assert AuditEvent.objects.count() == events


def test_export_is_stable_and_refuses_foreign_files(seeded, tmp_path: Path, capsys):
    bundle = tmp_path / "b"
    assert main(["env", "export", "acme/staging", str(bundle)]) == 0
    first = {p.name: p.read_text() for p in bundle.iterdir()}
    assert main(["env", "export", "acme/staging", str(bundle)]) == 0
    assert {p.name: p.read_text() for p in bundle.iterdir()} == first
    (bundle / "notes.txt").write_text("mine")
    assert main(["env", "export", "acme/staging", str(bundle)]) == 2
    assert "not part of a bundle" in capsys.readouterr().err


def test_invalid_bundle_is_rejected_with_every_problem_named(seeded, tmp_path: Path, capsys):
    bundle = tmp_path / "bad"
    bundle.mkdir()
    (bundle / "station-environment.yaml").write_text("format_version: 1\n")
    (bundle / "variables.yaml").write_text("GOOD: yes-really\nPORT: 8080\n")
    (bundle / "extra.yaml").write_text("{}\n")
    assert main(["env", "apply", str(bundle), "--to", "acme/dev"]) == 2
    err = capsys.readouterr().err
    assert "variables.yaml: PORT: value must be text" in err
    assert "extra.yaml: unknown file" in err
    assert _variables(seeded, "dev") == {}


@pytest.mark.parametrize("argv, message", [
    (["env", "export", "acme", "x"], "expected ORG/ENV"),
    (["env", "export", "nope/dev", "x"], "no organization"),
    (["env", "export", "acme/nope", "x"], "no environment"),
    (["env", "apply", "x", "--to", "acme/nope"], "no environment"),
])
def test_bad_targets_are_refused(seeded, tmp_path: Path, capsys, argv, message):
    (tmp_path / "x").mkdir()
    argv = [str(tmp_path / a) if a == "x" else a for a in argv]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
