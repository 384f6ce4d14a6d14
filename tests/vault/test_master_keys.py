"""Master keys under attack and accident: malformed configuration, a wrong or missing key,
and `station keys rotate` killed halfway (real subprocesses against the test database)."""

from __future__ import annotations

import base64
import os
import queue
import signal
import subprocess
import threading
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from django.core.exceptions import ImproperlyConfigured

from audit.models import AuditEvent
from station.vault import keyring, services
from station.vault.keyring import LocalKeyring, UnknownMasterKey
from station.vault.models import DataKey, KeyCanary, Secret, SecretVersion
from tenants.context import org_scope
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture
from tests.vault.helpers import (
    BASE_DIR,
    read_keys,
    run_station,
    station_argv,
    station_env,
    write_keys_file,
)

B64_32 = base64.b64encode(b"\x01" * 32).decode()
OTHER_B64_32 = base64.b64encode(b"\x02" * 32).decode()


# --- configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "k1",                                                   # no colon
    f"k1{B64_32}",                                          # no colon, key glued on
    "k1:not*base64!",                                       # bad base64
    "k1:é",                                                 # not even ASCII
    f"k1:{B64_32[:-4]}",                                    # truncated base64
    f"k1:{base64.b64encode(b'x' * 16).decode()}",           # 128-bit key
    f"k1:{base64.b64encode(b'x' * 33).decode()}",           # 264-bit key
    "k1:",                                                  # empty key
    f"bad kid!:{B64_32}",                                   # bad key id
    f":{B64_32}",                                           # empty key id
    f"{'k' * 65}:{B64_32}",                                 # key id too long
    f"k1:{B64_32},k1:{OTHER_B64_32}",                      # one id, two keys
])
def test_malformed_env_keys_name_the_variable(settings, value):
    settings.VAULT_MASTER_KEYS = value
    settings.VAULT_MASTER_KEYS_FILE = None
    settings.VAULT_MASTER_KEY_ID = None
    with pytest.raises(ImproperlyConfigured, match="STATION_MASTER_KEYS"):
        keyring.load_keyring()


def test_secret_key_material_is_not_echoed_in_config_errors(settings):
    settings.VAULT_MASTER_KEYS = f"k1:{base64.b64encode(b'y' * 31).decode()}"
    settings.VAULT_MASTER_KEYS_FILE = None
    with pytest.raises(ImproperlyConfigured) as exc:
        keyring.load_keyring()
    assert base64.b64encode(b"y" * 31).decode() not in str(exc.value)


def test_current_key_id_that_is_not_configured_names_the_variable(settings):
    settings.VAULT_MASTER_KEYS = f"k1:{B64_32}"
    settings.VAULT_MASTER_KEYS_FILE = None
    settings.VAULT_MASTER_KEY_ID = "k9"
    with pytest.raises(ImproperlyConfigured, match=r"STATION_MASTER_KEY_ID.*'k9'|'k9'.*"
                       r"STATION_MASTER_KEY_ID"):
        keyring.load_keyring()


def test_no_master_key_at_all_is_a_config_error(settings):
    settings.VAULT_MASTER_KEYS = None
    settings.VAULT_MASTER_KEYS_FILE = None
    with pytest.raises(ImproperlyConfigured, match="STATION_MASTER_KEYS"):
        keyring.load_keyring()


@pytest.mark.parametrize("content", [
    "not json",
    '{"current": "k1"}',
    '{"current": "k1", "keys": ["k1"]}',
    '{"current": "k1", "keys": {"k1": 12345}}',
    '{"current": "k1", "keys": {"k1": null}}',
    '{"current": "k1", "keys": {"k1": "short"}}',
    '["k1"]',
])
def test_malformed_keys_file_names_the_variable(settings, tmp_path, content):
    path = tmp_path / "keys.json"
    path.write_text(content)
    settings.VAULT_MASTER_KEYS = None
    settings.VAULT_MASTER_KEYS_FILE = path
    settings.VAULT_MASTER_KEY_ID = None
    with pytest.raises(ImproperlyConfigured, match="STATION_MASTER_KEYS_FILE"):
        keyring.load_keyring()


def test_a_key_id_with_different_values_in_file_and_env_is_refused(settings, tmp_path):
    path = tmp_path / "keys.json"
    write_keys_file(path, {"k1": b"\x01" * 32}, "k1")
    settings.VAULT_MASTER_KEYS_FILE = path
    settings.VAULT_MASTER_KEYS = f"k1:{OTHER_B64_32}"
    settings.VAULT_MASTER_KEY_ID = None
    with pytest.raises(ImproperlyConfigured, match="'k1'"):
        keyring.load_keyring()
    settings.VAULT_MASTER_KEYS = f"k1:{B64_32}"  # the same key twice is fine
    assert keyring.load_keyring().kids() == ["k1"]


# --- key-wrapping nonces ----------------------------------------------------------------------


def test_key_wrapping_nonces_never_repeat_under_one_master_key():
    ring = LocalKeyring(keys={"k1": os.urandom(32)}, current_kid="k1")
    data_key = os.urandom(32)
    nonces = set()
    for i in range(100_000):
        kid, wrapped = ring.wrap(data_key, context=b"ctx")
        assert kid == "k1" and len(wrapped) == 12 + 32 + 16
        nonces.add(wrapped[:12])
        if i == 0:
            assert ring.unwrap("k1", wrapped, context=b"ctx") == data_key
    assert len(nonces) == 100_000


def test_wrapped_data_key_is_bound_to_its_context():
    ring = LocalKeyring(keys={"k1": os.urandom(32)}, current_kid="k1")
    _, wrapped = ring.wrap(os.urandom(32), context=b"org-a:1")
    with pytest.raises(InvalidTag):
        ring.unwrap("k1", wrapped, context=b"org-b:1")


# --- a wrong or missing master key ------------------------------------------------------------


def _seed(fx: OrgFixture, values: dict[tuple[str, str], str]) -> None:
    with fx.scope():
        for (env, name), value in values.items():
            services.set_secret(actor=SYSTEM, environment=Environment.objects.get(slug=env),
                                name=name, value=value)


def _db_snapshot(orgs: list[OrgFixture]) -> dict[str, Any]:
    snap: dict[str, Any] = {"canaries": sorted(
        (c.kid, bytes(c.wrapped), c.retired_at) for c in KeyCanary.objects.all())}
    for fx in orgs:
        with fx.scope():
            snap[str(fx.org.pk)] = (
                sorted((str(d.pk), d.kid, bytes(d.wrapped), d.version, d.active)
                       for d in DataKey.objects.all()),
                sorted((str(v.pk), bytes(v.nonce), bytes(v.ciphertext), v.fingerprint)
                       for v in SecretVersion.objects.all()),
                AuditEvent.objects.count(),
            )
    return snap


@pytest.mark.slow
def test_wrong_master_key_is_refused_everywhere_and_nothing_is_overwritten(
        committed_db, make_org, keys_file, reveal_allowed):
    fx = make_org("wrongkey")
    _seed(fx, {("dev", "TOKEN"): "wrong-key-value-1"})
    data = read_keys(keys_file)
    wrong = os.urandom(32)
    write_keys_file(keys_file, {"k1": wrong}, "k1")  # same id, different bytes
    keyring.reset()
    file_before = keys_file.read_bytes()
    db_before = _db_snapshot([fx])
    assert data["keys"]["k1"] != base64.b64encode(wrong).decode()

    check = run_station(keys_file, "keys", "check")
    assert check.returncode != 0
    assert "'k1'" in check.stderr and "wrong" in check.stderr
    for argv in (["web", "--host", "127.0.0.1", "--port", "0", "--workers", "1"],
                 ["worker", "--concurrency", "1"]):
        proc = run_station(keys_file, *argv, timeout=60)
        assert proc.returncode != 0, argv
        assert "refusing to start" in proc.stderr and "'k1'" in proc.stderr, proc.stderr
    rotate = run_station(keys_file, "keys", "rotate")
    assert rotate.returncode != 0
    assert "'k1'" in rotate.stderr
    assert run_station(keys_file, "keys", "retire", "k1").returncode != 0

    assert keys_file.read_bytes() == file_before
    assert not list(keys_file.parent.glob("*.tmp"))
    assert _db_snapshot([fx]) == db_before

    # In process too: the worker-side reveal fails closed, and writes nothing.
    with fx.scope(), pytest.raises(InvalidTag):
        services.reveal(environment=Environment.objects.get(slug="dev"), name="TOKEN",
                        purpose="t", actor=SYSTEM)
    assert _db_snapshot([fx]) == db_before


def test_wrong_key_in_process_commands(db, org_a, keys_file, monkeypatch, capsys):
    from station.cli import main

    _seed(org_a, {("dev", "TOKEN"): "x"})
    write_keys_file(keys_file, {"k1": os.urandom(32)}, "k1")
    keyring.reset()
    monkeypatch.setenv("STATION_PROCESS", "web")
    monkeypatch.setenv("STATION_DB_ROLE", "app")

    def no_exec(*args: Any) -> None:
        raise AssertionError(f"would have started {args}")

    monkeypatch.setattr(os, "execv", no_exec)
    assert main(["keys", "check"]) == 1
    assert "'k1'" in capsys.readouterr().err
    for argv in (["web"], ["worker"]):
        assert main(argv) != 0
        err = capsys.readouterr().err
        assert "refusing to start" in err and "'k1'" in err


def test_missing_master_key_referenced_by_data_is_a_clear_error(
        db, org_a, keys_file, reveal_allowed, monkeypatch, capsys):
    from station.cli import main

    _seed(org_a, {("dev", "TOKEN"): "missing-key-value"})
    write_keys_file(keys_file, {"k2": os.urandom(32)}, "k2")  # k1 gone
    keyring.reset()
    monkeypatch.setenv("STATION_DB_ROLE", "app")
    assert services.check_master_keys() == [
        "master key 'k1' protects data but is not configured"]
    assert main(["keys", "check"]) == 1
    assert "'k1'" in capsys.readouterr().err
    with org_a.scope(), pytest.raises(UnknownMasterKey, match="'k1' is not configured"):
        services.reveal(environment=Environment.objects.get(slug="dev"), name="TOKEN",
                        purpose="t", actor=SYSTEM)


# --- master key rotation killed halfway -------------------------------------------------------


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _kids(fx: OrgFixture) -> list[str]:
    with fx.scope():
        return sorted(DataKey.objects.values_list("kid", flat=True))


@pytest.mark.slow
def test_master_key_rotation_killed_midway_then_rerun(
        committed_db, make_org, keys_file, reveal_allowed, owner_cursor):
    orgs = [make_org(f"rot-{i}") for i in range(6)]
    expected: dict[tuple[int, str, str], str] = {}
    for i, fx in enumerate(orgs):
        values = {("dev", "TOKEN"): f"tok-{i}-{os.urandom(4).hex()}",
                  ("prod", "DB_PASSWORD"): f"pw-{i}-{os.urandom(4).hex()}"}
        _seed(fx, values)
        if i % 2:
            _seed(fx, {("dev", "TOKEN"): f"tok-{i}-v2"})
            values[("dev", "TOKEN")] = f"tok-{i}-v2"
            with fx.scope():
                services.rotate_data_key(actor=SYSTEM, org=fx.org)  # data key v2
        expected.update({(i, env, name): v for (env, name), v in values.items()})
    assert all(_kids(fx) == ["k1"] for fx in orgs)
    original_k1 = read_keys(keys_file)["keys"]["k1"]

    # Hold org 2's data keys: the rotation re-wraps orgs 0 and 1, then waits on org 2.
    blocker = orgs[2]
    cur = owner_cursor
    cur.execute("BEGIN")
    try:
        cur.execute("SELECT set_config('app.org_id', %s, true)", [str(blocker.org.pk)])
        cur.execute("SELECT id FROM vault_datakey FOR UPDATE")
        assert cur.rowcount == 1
        proc = subprocess.Popen(station_argv("keys", "rotate"), env=station_env(keys_file),
                                cwd=BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        lines = _lines(proc)
        output, progress = [], 0
        try:
            while progress < 2:
                line = lines.get(timeout=60)
                assert line is not None, "".join(output) + (proc.stderr.read()
                                                            if proc.stderr else "")
                output.append(line)
                progress += line.startswith("  org ")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    finally:
        cur.execute("ROLLBACK")
    assert proc.returncode == -signal.SIGKILL
    assert "Added master key k2" in output[0]

    keyring.reset()
    after_kill = read_keys(keys_file)
    assert after_kill["current"] == "k2" and set(after_kill["keys"]) == {"k1", "k2"}
    assert after_kill["keys"]["k1"] == original_k1
    kids_after_kill = [_kids(fx) for fx in orgs]
    assert all(set(k) == {"k2"} for k in kids_after_kill[:2]), kids_after_kill
    assert all(set(k) == {"k1"} for k in kids_after_kill[2:]), kids_after_kill

    early = run_station(keys_file, "keys", "retire", "k1")
    assert early.returncode == 1 and "still wrapped" in early.stderr

    rerun = run_station(keys_file, "keys", "rotate")
    assert rerun.returncode == 0, rerun.stderr
    assert "Added master key" not in rerun.stdout
    assert "under k2 across 6 orgs" in rerun.stdout

    keyring.reset()
    final = read_keys(keys_file)
    assert final["current"] == "k2" and set(final["keys"]) == {"k1", "k2"}  # one new key
    ring = keyring.keyring()
    for i, fx in enumerate(orgs):
        with fx.scope():
            for dk in DataKey.objects.all():
                assert dk.kid == "k2"
                assert len(bytes(dk.wrapped)) == 12 + 32 + 16  # wrapped once, not twice
                assert len(services._unwrap(dk)) == 32
            for secret in Secret.objects.select_related("environment"):
                value = services.reveal(environment=secret.environment, name=secret.name,
                                        purpose="rotation test", actor=SYSTEM)
                assert value == expected[(i, secret.environment.slug, secret.name)]
            rewraps = AuditEvent.objects.filter(action="vault.data_keys_rewrapped")
            assert rewraps.count() == 1
            assert rewraps.get().changes["to"] == "k2"
    assert ring.current_kid == "k2"

    again = run_station(keys_file, "keys", "rotate", "--rewrap-only")
    assert again.returncode == 0 and "Done: 0 data keys" in again.stdout
    retire = run_station(keys_file, "keys", "retire", "k1")
    assert retire.returncode == 0, retire.stderr
    assert KeyCanary.objects.get(kid="k1").retired_at is not None
    assert run_station(keys_file, "keys", "check").returncode == 0
    assert read_keys(keys_file) == final
    with org_scope(orgs[0].org.pk):
        assert DataKey.objects.filter(kid="k1").count() == 0
