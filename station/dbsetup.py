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
