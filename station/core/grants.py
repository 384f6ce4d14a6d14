"""Privileges of the app role, re-applied after every migrate (as the owner role).

The app role owns nothing: it gets DML on every table, and only INSERT/SELECT on
append-only tables (the audit log). Policies themselves travel in the migrations
(see tenants.rls).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections

# Tables the app role may only INSERT into and SELECT from.
APPEND_ONLY_TABLES: list[str] = ["audit_auditevent"]


def grant_app_role(using: str = "default", **_: Any) -> None:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    role = settings.DATABASE_APP_ROLE
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (me,) = cursor.fetchone()
        if me == role:
            return  # migrations must not run as the app role; nothing to grant to ourselves
        quoted = connection.ops.quote_name(role)
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        cursor.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}"
        )
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {quoted}")
        for table in APPEND_ONLY_TABLES:
            cursor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {quoted}")
