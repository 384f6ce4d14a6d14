"""The database server and the throwaway benchmark database.

Embedded default (no DATABASE_URL): the benchmark runs its own embedded cluster in
STATION_DATA_DIR (default `var/bench`, apart from `station up`'s and the tests'), starts it if
needed and stops it at the end if it started it. With DATABASE_URL (and DATABASE_OWNER_URL,
optionally DATABASE_SUPERUSER_URL) it uses that server. Either way it creates a fresh database
(`bench_station` unless STATION_BENCH_DATABASE_NAME says otherwise) as the owner role,
migrates it as the owner, seeds it, and drops it at the end. It never touches the dev or test
database.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

# --- before Django settings are loaded --------------------------------------------------------


@dataclass
class Server:
    embedded: bool
    root: Path | None
    started_here: bool


def start_server() -> Server:
    """Start (or attach to) the embedded cluster, or bootstrap roles on an external server."""
    if os.environ.get("DATABASE_URL"):
        return Server(embedded=False, root=None, started_here=False)
    from station import datadir, embedded

    root = datadir.data_dir()
    started = embedded.start_postgres(root)
    embedded.bootstrap_database(root)
    return Server(embedded=True, root=root, started_here=started)


def stop_server(server: Server) -> None:
    if server.embedded and server.started_here and server.root is not None:
        from station import embedded

        embedded.stop_postgres(server.root)


# --- after django.setup() ---------------------------------------------------------------------


def bootstrap_external_roles() -> None:
    """With DATABASE_SUPERUSER_URL, make sure both roles exist, as the test plugin does."""
    from station import dbsetup

    dbsetup.bootstrap_from_settings()


def conninfo(alias: str, dbname: str | None = None) -> dict[str, Any]:
    """libpq parameters of a Django alias (optionally for another database on that server)."""
    from django.db import connections

    params = connections[alias].get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
        params.pop(key, None)
    if dbname is not None:
        params["dbname"] = dbname
    return params


def check_roles() -> tuple[str, str]:
    """The app and owner role names; they must differ, or there is no RLS to measure."""
    from django.conf import settings

    app = str(settings.DATABASES["default"]["USER"])
    owner = str(settings.DATABASES["bare"]["USER"])
    if app == owner:
        raise SystemExit(
            "benchmarks: the app and owner roles are the same role "
            f"({app!r}); set DATABASE_OWNER_URL to the owner role (DESIGN.md, Tenancy)."
        )
    return app, owner


def _owner_maintenance() -> psycopg.Connection[Any]:
    from benchmarks.settings import BENCH_MAINTENANCE_DATABASE

    return psycopg.connect(**conninfo("bare", BENCH_MAINTENANCE_DATABASE), autocommit=True)


def create_database() -> None:
    from benchmarks.settings import BENCH_DATABASE_NAME

    name = sql.Identifier(BENCH_DATABASE_NAME)
    with _owner_maintenance() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def drop_database() -> None:
    from django.db import connections

    from benchmarks.settings import BENCH_DATABASE_NAME

    connections.close_all()
    name = sql.Identifier(BENCH_DATABASE_NAME)
    try:
        with _owner_maintenance() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    except psycopg.Error as exc:  # never hide the run's own error; the next run drops it
        print(f"benchmarks: could not drop {BENCH_DATABASE_NAME!r}: {exc}",
              file=sys.stderr)


def migrate() -> None:
    """Migrate as the owner role; post_migrate grants the app role its privileges."""
    from django.core.management import call_command

    call_command("migrate", database="bare", interactive=False, verbosity=0)


def server_version() -> str:
    from django.db import connections

    with connections["bare"].cursor() as cursor:
        cursor.execute("SHOW server_version")
        row = cursor.fetchone()
    assert row is not None
    return str(row[0])


# --- seed data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiSeed:
    """Figure 1: two orgs made through the services, each with `per_org` environments."""

    org_a: uuid.UUID
    org_b: uuid.UUID
    api_key: str  # plaintext, org A, created by org A's owner
    per_org: int


@dataclass(frozen=True)
class RlsSeed:
    """Figure 2: filler orgs with environments interleaved across orgs (as tenants grow)."""

    orgs: int
    rows_per_org: int
    target_org: uuid.UUID

    @property
    def rows(self) -> int:
        return self.orgs * self.rows_per_org


def lift_force_for_owner(tables: list[str]) -> None:
    """In the throwaway database only: let the owner role bypass RLS on these tables.

    ENABLE stays on, so the app role is filtered exactly as in production; only the owner
    (the `bare` alias) reads and bulk-loads without policies.
    """
    with psycopg.connect(**conninfo("bare"), autocommit=True) as conn:
        for table in tables:
            conn.execute(
                sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(sql.Identifier(table))
            )


def seed_api(per_org: int) -> ApiSeed:
    """Two orgs as production makes them (app role, services, audit), plus environments."""
    from datetime import timedelta

    from django.utils import timezone

    from tenants import services
    from tenants.authz import Principal
    from tenants.context import org_scope
    from tenants.models import Environment

    system = Principal.system("benchmarks")
    made = []
    for slug in ("bench-a", "bench-b"):
        created = services.create_organization(
            actor=system, slug=slug, name=slug.title(), owner_email=f"owner@{slug}.example"
        )
        with org_scope(created.organization):
            existing = Environment.objects.count()
            now = timezone.now()
            Environment.objects.bulk_create(
                Environment(
                    organization_id=created.organization.pk, slug=f"env-{i}", name=f"Env {i}",
                    created_at=now - timedelta(seconds=i),
                )
                for i in range(per_org - existing)
            )
        made.append(created)
    a = made[0]
    with org_scope(a.organization):
        key = services.create_api_key(
            actor=Principal.for_user(a.owner), org=a.organization, name="bench", role="viewer"
        )
    return ApiSeed(org_a=a.organization.pk, org_b=made[1].organization.pk,
                   api_key=key.plaintext, per_org=per_org)


def seed_rls(orgs: int, rows_per_org: int) -> RlsSeed:
    """Bulk-load filler orgs and environments as the owner (FORCE lifted), then ANALYZE."""
    with psycopg.connect(**conninfo("bare"), autocommit=True) as conn:
        with conn.transaction():
            conn.execute(
                "INSERT INTO tenants_organization (id, slug, name, created_at, require_mfa) "
                "SELECT gen_random_uuid(), 'filler-' || g, 'Filler ' || g, now(), false "
                "FROM generate_series(1, %s) AS g",
                [orgs],
            )
            # Row n of every org is written before row n+1 of any org: each org's rows are
            # spread over the whole table, as when many tenants grow side by side.
            conn.execute(
                "INSERT INTO tenants_environment (id, organization_id, slug, name, created_at) "
                "SELECT gen_random_uuid(), o.id, 'env-' || g, 'Environment ' || g, "
                "       now() - make_interval(secs => %s - g) "
                "FROM generate_series(1, %s) AS g "
                "CROSS JOIN (SELECT id, slug FROM tenants_organization "
                "            WHERE slug LIKE 'filler-%%') AS o "
                "ORDER BY g, o.slug",
                [rows_per_org, rows_per_org],
            )
        row = conn.execute(
            "SELECT id FROM tenants_organization WHERE slug = %s", [f"filler-{orgs // 2}"]
        ).fetchone()
        assert row is not None
        conn.execute("VACUUM ANALYZE tenants_organization")
        conn.execute("VACUUM ANALYZE tenants_environment")
    return RlsSeed(orgs=orgs, rows_per_org=rows_per_org, target_org=row[0])
