"""pytest plugin (loaded with `-p station.testing.pytest_plugin`).

Makes the test database the way production runs: created and migrated by the owner role,
then every test connects as the app role, so row-level security is really in force. With no
DATABASE_URL it starts the embedded PostgreSQL (in var/test) first; with one (and
DATABASE_SUPERUSER_URL) it bootstraps the roles on that server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Before Django reads settings: tests get their own data dir, apart from `station up`'s.
os.environ.setdefault("STATION_DATA_DIR", str(Path("var/test").resolve()))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "station.settings")
# One test database per pytest process, so concurrent runs on one server never collide.
os.environ.setdefault("STATION_TEST_DATABASE_NAME", f"test_station_{os.getpid()}")
# The shared cache (sign-in rate limits): keys of one pytest process never meet another's,
# and cache.clear() deletes only this prefix (station.core.cache_backends). With the embedded
# broker, which unit tests do not start, each process keeps its own in-memory cache.
os.environ.setdefault("STATION_CACHE_KEY_PREFIX", f"station-test-{os.getpid()}")
if not os.environ.get("CELERY_BROKER_URL"):
    os.environ.setdefault("STATION_CACHE_URL", "locmem://")


def _owner_credentials() -> tuple[str, str]:
    import dj_database_url
    from django.conf import settings

    owner = dj_database_url.parse(settings.DATABASE_OWNER_URL)
    return owner["USER"], owner["PASSWORD"]


@contextmanager
def as_owner() -> Iterator[None]:
    """Point the default connection at the owner role for the duration of the block."""
    from django.db import connections

    conn = connections["default"]
    saved = conn.settings_dict["USER"], conn.settings_dict["PASSWORD"]
    conn.close()
    conn.settings_dict["USER"], conn.settings_dict["PASSWORD"] = _owner_credentials()
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict["USER"], conn.settings_dict["PASSWORD"] = saved


def prepare_server() -> None:
    from django.conf import settings
    from django.db import connections

    from station import datadir, dbsetup, embedded

    if settings.EMBEDDED_DATABASE:
        root = settings.DATA_DIR
        embedded.start_postgres(root)
        embedded.bootstrap_database(root)
        # The socket directory is only known once the server runs.
        connections["default"].settings_dict["HOST"] = str(datadir.pg_socket_dir(root))
        return
    dbsetup.bootstrap_from_settings()


def _drop_abandoned_test_databases() -> None:
    """Drop test_station_<pid> databases left by pytest processes that no longer exist."""
    import re

    import psycopg
    from django.db import connections

    params = connections["default"].get_connection_params()
    params["dbname"] = "postgres"
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    with psycopg.connect(**params, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'test_station_%%'"
            )
        ]
        for name in names:
            match = re.fullmatch(r"test_station_(\d+)", name)
            if match is None or int(match.group(1)) == os.getpid():
                continue
            try:
                os.kill(int(match.group(1)), 0)
                continue  # that pytest is still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def django_db_setup(
    request: pytest.FixtureRequest, django_test_environment: None, django_db_blocker: Any
) -> Iterator[None]:
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        prepare_server()
        with as_owner():
            _drop_abandoned_test_databases()
            config = setup_databases(
                verbosity=0, interactive=False, keepdb=False, serialized_aliases=[]
            )
    yield
    with django_db_blocker.unblock(), as_owner():
        teardown_databases(config, verbosity=0)


@pytest.fixture
def owner_cursor(django_db_setup: None, django_db_blocker: Any) -> Iterator[Any]:
    """A separate autocommit connection as the owner role (for tamper tests and cleanup)."""
    import psycopg
    from django.db import connections

    params = connections["default"].get_connection_params()
    params["user"], params["password"] = _owner_credentials()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as conn, conn.cursor() as cur:
        yield cur


def truncate_all_as_owner(cur: Any) -> None:
    """Empty every table between committed-data tests; audit triggers are the owner's to lift."""
    cur.execute(
        "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables WHERE schemaname='public'"
        " AND tablename <> 'django_migrations'"
    )
    (tables,) = cur.fetchone()
    cur.execute("BEGIN")
    cur.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
    cur.execute(f"TRUNCATE {tables} CASCADE")
    cur.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    cur.execute("COMMIT")


@pytest.fixture
def committed_db(
    django_db_setup: None, django_db_blocker: Any, owner_cursor: Any
) -> Iterator[None]:
    """Database access with real commits (other connections see the data); emptied after."""
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            from django.db import connections

            connections.close_all()
            truncate_all_as_owner(owner_cursor)
