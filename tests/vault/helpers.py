"""Helpers for the vault's adversarial tests: an isolated master-keys file, the environment
that points a real `station` subprocess at the test database, and leak scanning."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings

from station.vault import keyring

BASE_DIR = Path(__file__).resolve().parents[2]


def write_keys_file(path: Path, keys: dict[str, bytes], current: str) -> None:
    payload = {"current": current,
               "keys": {kid: base64.b64encode(raw).decode() for kid, raw in keys.items()}}
    path.write_text(json.dumps(payload, indent=2))
    path.chmod(0o600)


def read_keys(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _url(user: str, password: str, host: str, port: Any, name: str) -> str:
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{quote(host, safe='')}"
    if port:
        netloc += f":{port}"
    return f"postgres://{netloc}/{name}"


def station_env(keys_file: Path) -> dict[str, str]:
    """Environment for `python -m station.cli …` against this test run's database, with
    master keys only from `keys_file` (never the shared var/test file)."""
    from django.db import connections

    from station.testing.pytest_plugin import _owner_credentials

    sd = connections["default"].settings_dict
    host, port, name = str(sd["HOST"]), sd.get("PORT"), str(sd["NAME"])
    owner, owner_password = _owner_credentials()
    env = {k: v for k, v in os.environ.items()
           if k not in {"STATION_MASTER_KEYS", "STATION_MASTER_KEY_ID", "STATION_PROCESS",
                        "STATION_DB_ROLE", "DATABASE_SUPERUSER_URL"}}
    env.update({
        "DATABASE_URL": _url(str(sd["USER"]), str(sd["PASSWORD"]), host, port, name),
        "DATABASE_OWNER_URL": _url(owner, owner_password, host, port, name),
        "STATION_MASTER_KEYS_FILE": str(keys_file),
        "STATION_SECRET_KEY": str(settings.SECRET_KEY),
        "STATION_DB_CONN_MAX_AGE": "0",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "station.settings",
    })
    return env


def station_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "station.cli", *args]


def run_station(keys_file: Path, *args: str,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(station_argv(*args), env=station_env(keys_file), cwd=BASE_DIR,
                          capture_output=True, text=True, timeout=timeout, check=False)


def use_keys_file(settings_fixture: Any, path: Path) -> None:
    """Point this process's keyring at `path` (and nothing else)."""
    settings_fixture.VAULT_MASTER_KEYS_FILE = path
    settings_fixture.VAULT_MASTER_KEYS = None
    settings_fixture.VAULT_MASTER_KEY_ID = None
    settings_fixture.VAULT_GENERATE_KEYS_FILE = False
    keyring.reset()


def leak_forms(values: Iterable[str]) -> list[str]:
    """Every way a value could show up in text: as is, hex (bytea), base64, JSON-escaped."""
    forms: list[str] = []
    for value in values:
        raw = value.encode()
        forms += [value, raw.hex(), base64.b64encode(raw).decode(),
                  base64.urlsafe_b64encode(raw).decode(), json.dumps(value)[1:-1]]
    return forms


def leaks(text: str | bytes, values: Iterable[str]) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lowered = text.lower()
    return [form for form in leak_forms(values) if form.lower() in lowered]
