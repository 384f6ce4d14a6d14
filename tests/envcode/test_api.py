"""The bundle and promotion endpoints: export, diff, apply, promotion, errors, permissions."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from station.envcode.bundle import MANIFEST
from station.vault.models import Secret, Variable
from tenants import services as tenant_services
from tenants.models import Environment
from tests.envcode.conftest import env
from tests.fixtures import SYSTEM

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def _ids(fx):
    with fx.scope():
        return {e.slug: e.pk for e in Environment.objects.all()}


def _variables(fx, slug):
    with fx.scope():
        return dict(Variable.objects.filter(environment__slug=slug).values_list("name", "value"))


def test_export_diff_apply_round_trip(seeded):
    client, ids = seeded.client("developer"), _ids(seeded)
    exported = client.get(f"/api/v1/environments/{ids['staging']}/bundle")
    assert exported.status_code == 200, exported.content
    files = exported.json()["files"]
    assert list(files) == [MANIFEST, "secrets.yaml", "variables.yaml"]
    assert "staging-secret" not in exported.content.decode()

    with seeded.scope():
        events = AuditEvent.objects.count()
    diff = client.post(f"/api/v1/environments/{ids['prod']}/bundle/diff", {"files": files})
    assert diff.status_code == 200, diff.content
    body = diff.json()
    assert body["applied"] is False and body["empty"] is False
    assert {(c["name"], c["action"]) for c in body["changes"]} == {
        ("API_URL", "add"), ("GREETING", "add"), ("LOG_LEVEL", "change")}
    assert [c["name"] for c in body["missing"]] == ["OPENAI_KEY"]
    assert _variables(seeded, "prod") == {"LOG_LEVEL": "warning"}
    with seeded.scope():
        assert AuditEvent.objects.count() == events  # a diff writes nothing, not even an event

    applied = client.post(f"/api/v1/environments/{ids['prod']}/bundle/apply", {"files": files})
    assert applied.status_code == 200, applied.content
    assert applied.json()["applied"] is True
    assert _variables(seeded, "prod") == _variables(seeded, "staging")

    again = client.post(f"/api/v1/environments/{ids['prod']}/bundle/apply", {"files": files})
    assert again.json()["empty"] is True and again.json()["applied"] is False
    with seeded.scope():
        assert AuditEvent.objects.filter(action="environment.bundle_applied").count() == 1


def test_invalid_bundle_is_a_422_naming_file_and_field(seeded):
    client, ids = seeded.client("owner"), _ids(seeded)
    files = {MANIFEST: "format_version: 1\n", "variables.yaml": "PORT: 8080\nOK: fine\n",
             "notes.md": "hello"}
    response = client.post(f"/api/v1/environments/{ids['dev']}/bundle/apply", {"files": files})
    assert response.status_code == 422
    assert response["Content-Type"].startswith(PROBLEM)
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"variables.yaml: PORT", "notes.md"}
    assert _variables(seeded, "dev") == {}


def test_bundle_body_must_be_files_of_text(seeded):
    client, ids = seeded.client("owner"), _ids(seeded)
    response = client.post(f"/api/v1/environments/{ids['dev']}/bundle/diff", {"files": "x"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].startswith("files")


def test_export_needs_secrets_read_too(seeded):
    client = seeded.client(scopes=["variables.read", "environments.read"])
    response = client.get(f"/api/v1/environments/{_ids(seeded)['staging']}/bundle")
    assert response.status_code == 403
    assert "secrets.read" in response.json()["detail"]


def test_environment_bound_key_cannot_touch_another_environment(seeded):
    client, ids = seeded.client("developer", env="dev"), _ids(seeded)
    response = client.post(f"/api/v1/environments/{ids['prod']}/promotion",
                           {"source": "staging"})
    assert response.status_code == 404


def test_promotion_adds_names_without_values_and_never_overwrites(seeded):
    client, ids = seeded.client("developer"), _ids(seeded)
    preview = client.post(f"/api/v1/environments/{ids['prod']}/promotion",
                          {"source": "staging", "dry_run": True})
    assert preview.status_code == 200, preview.content
    body = preview.json()
    assert [(c["name"], c["after"], c["note"]) for c in body["changes"]] == [
        ("API_URL", "", "needs a value in target"), ("GREETING", "", "needs a value in target")]
    assert [c["name"] for c in body["missing"]] == ["OPENAI_KEY"]
    assert _variables(seeded, "prod") == {"LOG_LEVEL": "warning"}

    done = client.post(f"/api/v1/environments/{ids['prod']}/promotion", {"source": "staging"})
    assert done.status_code == 200 and done.json()["applied"] is True
    assert _variables(seeded, "prod") == {"API_URL": "", "GREETING": "",
                                          "LOG_LEVEL": "warning"}
    with seeded.scope():
        assert not Secret.objects.filter(environment__slug="prod", name="OPENAI_KEY").exists()
        event = AuditEvent.objects.get(action="environment.promoted")
        assert event.changes["source"] == "staging" and event.changes["environment"] == "prod"
    again = client.post(f"/api/v1/environments/{ids['prod']}/promotion", {"source": "staging"})
    assert again.json()["empty"] is True


def test_promotion_needs_permission_on_the_target(seeded):
    """A member narrowed to viewer in prod may promote into dev, not into prod."""
    membership = seeded.add_member("lead@acme.example", "admin")
    with seeded.scope():
        tenant_services.set_environment_role(actor=SYSTEM, membership=membership,
                                             environment=env("prod"), role="viewer")
    client = seeded.client("developer", created_by=membership.user)
    ids = _ids(seeded)
    with seeded.scope():
        events = AuditEvent.objects.count()
    response = client.post(f"/api/v1/environments/{ids['prod']}/promotion",
                           {"source": "staging"})
    assert response.status_code == 403, response.content
    assert "variables.write" in response.json()["detail"]
    assert _variables(seeded, "prod") == {"LOG_LEVEL": "warning"}
    with seeded.scope():
        assert AuditEvent.objects.count() == events
    ok = client.post(f"/api/v1/environments/{ids['dev']}/promotion", {"source": "staging"})
    assert ok.status_code == 200, ok.content


@pytest.mark.parametrize("body, field", [
    ({"source": "nope"}, "source"),
    ({"source": "prod"}, "source"),
    ({"source": "staging", "kinds": ["no_such_kind"]}, "kinds"),
    ({}, "source"),
])
def test_bad_promotion_requests_are_422(seeded, body, field):
    response = seeded.client("owner").post(
        f"/api/v1/environments/{_ids(seeded)['prod']}/promotion", body)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.json()["errors"]}
