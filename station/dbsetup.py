"""Database roles and database for Station, created with a superuser connection.

Two roles (DESIGN.md "Tenancy"): the owner owns the database and schema and runs
migrations; the app role logs in for web and worker processes, owns nothing, is not a
superuser and cannot bypass RLS. Running this again resets passwords and attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class RolePlan:
    owner: str
    owner_password: str
    app: str
    app_password: str
    database: str


def _ensure_role(
    cur: psycopg.Cursor[tuple[object, ...]], name: str, password: str, attrs: str
) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
    verb = "ALTER" if cur.fetchone() else "CREATE"
    cur.execute(
        sql.SQL(verb + " ROLE {} WITH " + attrs + " PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(password)
        )
    )


def bootstrap(superuser_url: str, plan: RolePlan) -> None:
    with psycopg.connect(superuser_url, autocommit=True) as conn, conn.cursor() as cur:
        _ensure_role(
            cur,
            plan.owner,
            plan.owner_password,
            "LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOBYPASSRLS",
        )
        _ensure_role(
            cur,
            plan.app,
            plan.app_password,
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS",
        )
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [plan.database])
        if cur.fetchone() is None:
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(plan.database), sql.Identifier(plan.owner)
                )
            )
    db_url = psycopg.conninfo.make_conninfo(superuser_url, dbname=plan.database)
    with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor() as cur:
        owner, app = sql.Identifier(plan.owner), sql.Identifier(plan.app)
        cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner))
        cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(app))
        cur.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
            ).format(owner, app)
        )
        cur.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                "GRANT USAGE, SELECT ON SEQUENCES TO {}"
            ).format(owner, app)
        )


class SameRoleError(ValueError):
    """The app and owner URLs name the same role: the app role would own the tables."""


def plan_from_urls(app_url: str, owner_url: str) -> RolePlan:
    import dj_database_url

    app, owner = dj_database_url.parse(app_url), dj_database_url.parse(owner_url)
    if app["USER"] == owner["USER"]:
        raise SameRoleError("DATABASE_URL and DATABASE_OWNER_URL must use different roles.")
    return RolePlan(owner=owner["USER"], owner_password=owner["PASSWORD"],
                    app=app["USER"], app_password=app["PASSWORD"], database=app["NAME"])


def bootstrap_from_settings() -> RolePlan | None:
    """With an external database and DATABASE_SUPERUSER_URL: create or reset the two roles
    and the database named by DATABASE_URL / DATABASE_OWNER_URL. Returns the plan, or None
    when there is nothing to do (embedded database, or no superuser URL)."""
    import os

    from django.conf import settings

    if settings.EMBEDDED_DATABASE or not settings.DATABASE_SUPERUSER_URL:
        return None
    plan = plan_from_urls(os.environ["DATABASE_URL"], settings.DATABASE_OWNER_URL)
    bootstrap(settings.DATABASE_SUPERUSER_URL, plan)
    return plan
