"""Bundles through the services: export, validate, diff, apply (all or nothing), prune."""

from __future__ import annotations

import pytest
import yaml

from audit.models import AuditEvent
from station.core.errors import InvalidInput
from station.envcode import services
from station.envcode.bundle import MANIFEST
from station.vault.models import Secret, Variable
from tests.envcode.conftest import env
from tests.fixtures import SYSTEM

pytestmark = pytest.mark.django_db

MANIFEST_TEXT = "format_version: 1\n"


def _state(slug: str) -> tuple[dict[str, str], list[str]]:
    e = env(slug)
    return (dict(Variable.objects.filter(environment=e).values_list("name", "value")),
            sorted(Secret.objects.filter(environment=e).values_list("name", flat=True)))


def _events() -> list[str]:
    return list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))


def test_export_is_readable_sorted_and_holds_no_secret_values(seeded):
    with seeded.scope():
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
    assert list(files) == [MANIFEST, "secrets.yaml", "variables.yaml"]
    manifest = yaml.safe_load(files[MANIFEST])
    assert manifest == {"format_version": 1,
                        "source": {"organization": "acme", "environment": "staging"}}
    assert yaml.safe_load(files["variables.yaml"]) == {
        "API_URL": "https://staging.example", "GREETING": "héllo\nworld: yes",
        "LOG_LEVEL": "debug"}
    assert yaml.safe_load(files["secrets.yaml"]) == ["GITHUB_TOKEN", "OPENAI_KEY"]
    assert "staging-secret" not in "".join(files.values())
    assert files["variables.yaml"].index("API_URL") < files["variables.yaml"].index("LOG_LEVEL")
    with seeded.scope():  # deterministic: the same environment exports byte for byte the same
        assert services.export_bundle(actor=SYSTEM, environment=env("staging")) == files


def test_export_then_apply_to_another_environment_round_trips(seeded):
    with seeded.scope():
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        plan = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert plan.applied
        assert {(c.name, c.action) for c in plan.actionable} == {
            ("API_URL", "add"), ("GREETING", "add"), ("LOG_LEVEL", "change")}
        assert [(c.name, c.note) for c in plan.missing] == [
            ("OPENAI_KEY", "missing value — set it before use")]
        variables, secrets = _state("prod")
        assert variables == _state("staging")[0]
        assert secrets == ["GITHUB_TOKEN"]  # never created: values do not travel
        exported = services.export_bundle(actor=SYSTEM, environment=env("prod"))
        assert exported["variables.yaml"] == files["variables.yaml"]
        summary = AuditEvent.objects.filter(action="environment.bundle_applied").get()
        assert summary.changes["summary"] == {
            "variables": {"add": 2, "change": 1}, "secrets": {"missing": 1}}
        assert summary.changes["source"] == "acme/staging"
        assert _events().count("variable.set") == 4 + 3


def test_applying_twice_changes_nothing_the_second_time(seeded):
    with seeded.scope():
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        before = _events()
        second = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert second.empty and second.actionable == [] and not second.applied
        assert _events() == before


def test_dry_run_changes_nothing(seeded):
    with seeded.scope():
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        before, events = _state("prod"), _events()
        plan = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files,
                                     dry_run=True, prune=True)
        assert not plan.empty and not plan.applied
        assert _state("prod") == before and _events() == events


def test_absent_names_are_kept_unless_prune(seeded):
    files = {MANIFEST: MANIFEST_TEXT, "variables.yaml": "LOG_LEVEL: info\n",
             "secrets.yaml": "[]\n"}
    with seeded.scope():
        plan = services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=files)
        assert [(c.name, c.action) for c in plan.changes] == [("LOG_LEVEL", "change")]
        assert set(_state("staging")[0]) == {"API_URL", "GREETING", "LOG_LEVEL"}
        plan = services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=files,
                                     prune=True)
        assert sorted((c.kind, c.name, c.action) for c in plan.changes) == [
            ("secrets", "GITHUB_TOKEN", "remove"), ("secrets", "OPENAI_KEY", "remove"),
            ("variables", "API_URL", "remove"), ("variables", "GREETING", "remove")]
        assert _state("staging") == ({"LOG_LEVEL": "info"}, [])


def test_kinds_missing_from_the_bundle_are_left_alone_even_with_prune(seeded):
    with seeded.scope():
        plan = services.apply_bundle(actor=SYSTEM, environment=env("staging"),
                                     files={MANIFEST: MANIFEST_TEXT}, prune=True)
        assert plan.changes == []
        assert len(_state("staging")[1]) == 2


VALID = {MANIFEST: MANIFEST_TEXT, "variables.yaml": "A: one\n", "secrets.yaml": "- TOKEN\n"}


@pytest.mark.parametrize("files, field, message", [
    ({"extra.yaml": "x: 1\n"}, "extra.yaml", "unknown file"),
    ({"widgets/helper.prompt": "hi"}, "widgets/helper.prompt", "unknown file"),
    ({MANIFEST: "format_version: 1\ncolour: blue\n"}, f"{MANIFEST}: colour", "unknown field"),
    ({MANIFEST: "format_version: 2\n"}, f"{MANIFEST}: format_version", "not supported"),
    ({MANIFEST: "source: {organization: acme}\n"}, f"{MANIFEST}: format_version", "required"),
    ({MANIFEST: "format_version: 1\nsource: {planet: mars}\n"},
     f"{MANIFEST}: source.planet", "unknown field"),
    ({"variables.yaml": "bad-name: x\n"}, "variables.yaml: bad-name", "invalid name"),
    ({"variables.yaml": "PORT: 8080\n"}, "variables.yaml: PORT", "must be text"),
    ({"variables.yaml": "DEBUG: true\n"}, "variables.yaml: DEBUG", "must be text"),
    ({"variables.yaml": "EMPTY:\n"}, "variables.yaml: EMPTY", "must be text"),
    ({"variables.yaml": "A: one\nA: two\n"}, "variables.yaml: A", "given twice"),
    ({"variables.yaml": "A: [unclosed\n"}, "variables.yaml", "YAML syntax error"),
    ({"variables.yaml": "- A\n"}, "variables.yaml", "must be a mapping"),
    ({"secrets.yaml": "TOKEN: hunter2\n"}, "secrets.yaml", "must be a list"),
    ({"secrets.yaml": "- TOKEN\n- TOKEN\n"}, "secrets.yaml: TOKEN", "listed twice"),
    ({"secrets.yaml": "- 1x\n"}, "secrets.yaml: 1x", "invalid name"),
    ({"secrets.yaml": "- {a: b}\n"}, "secrets.yaml: [0]", "invalid name"),
    ({"../etc/passwd": "x"}, "../etc/passwd", "not a valid bundle path"),
])
def test_invalid_bundles_are_rejected_whole_naming_file_and_entry(seeded, files, field, message):
    bundle = {**VALID, **files}
    if files.get(MANIFEST, "").startswith("source"):
        bundle[MANIFEST] = files[MANIFEST]
    with seeded.scope():
        before, events = _state("staging"), _events()
        with pytest.raises(InvalidInput) as caught:
            services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=bundle)
        assert field in caught.value.errors, caught.value.errors
        assert any(message in m for m in caught.value.errors[field]), caught.value.errors
        assert _state("staging") == before and _events() == events  # A: one was not set


def test_missing_manifest_is_rejected(seeded):
    with seeded.scope(), pytest.raises(InvalidInput) as caught:
        services.apply_bundle(actor=SYSTEM, environment=env("dev"),
                              files={"variables.yaml": "A: b\n"})
    assert MANIFEST in caught.value.errors


def test_every_problem_is_reported_at_once(seeded):
    files = {MANIFEST: "format_version: 1\nextra: 1\n", "variables.yaml": "a-b: 1\nN: 2\n",
             "nope.txt": ""}
    with seeded.scope(), pytest.raises(InvalidInput) as caught:
        services.apply_bundle(actor=SYSTEM, environment=env("dev"), files=files)
    assert set(caught.value.errors) == {f"{MANIFEST}: extra", "variables.yaml: a-b",
                                        "variables.yaml: N", "nope.txt"}


def test_a_failing_change_rolls_back_the_whole_apply(seeded, monkeypatch):
    from station.vault import services as vault

    real = vault.set_variable
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs["name"])
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(**kwargs)

    monkeypatch.setattr(vault, "set_variable", flaky)
    files = {MANIFEST: MANIFEST_TEXT, "variables.yaml": "A: one\nB: two\n"}
    with seeded.scope():
        before, events = _state("dev"), _events()
        with pytest.raises(RuntimeError):
            services.apply_bundle(actor=SYSTEM, environment=env("dev"), files=files)
        assert _state("dev") == before and _events() == events


def test_applying_needs_write_permission_in_the_target(seeded, member):
    from station.core.errors import AccessDenied
    from tenants.authz import Principal

    viewer = Principal.for_user(member("viewer@acme.example", "viewer"))
    files = {MANIFEST: MANIFEST_TEXT, "variables.yaml": "A: one\n"}
    with seeded.scope():
        plan = services.apply_bundle(actor=viewer, environment=env("dev"), files=files,
                                     dry_run=True)  # reading is enough for a diff
        assert [c.name for c in plan.changes] == ["A"]
        with pytest.raises(AccessDenied):
            services.apply_bundle(actor=viewer, environment=env("dev"), files=files)
        assert _state("dev") == ({}, [])
