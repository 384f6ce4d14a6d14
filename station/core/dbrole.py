"""Is the database role this process connects as safe to serve tenants with?

RLS only isolates tenants if the app role cannot bypass it: not a superuser, no BYPASSRLS,
owning no table (owners can disable RLS and the audit triggers) and not a member of a role
that owns one. Web and worker processes refuse to start, and /readyz reports unavailable,
when this does not hold.
"""

from __future__ import annotations

from django.db import connection

_POSTURE_SQL = """
SELECT r.rolsuper, r.rolbypassrls,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND pg_has_role(current_user, c.relowner, 'USAGE'))
FROM pg_roles r WHERE r.rolname = current_user
"""


def unsafe_role_reason() -> str | None:
    """None when the connected role is safe; otherwise why it is not."""
    with connection.cursor() as cursor:
        cursor.execute(_POSTURE_SQL)
        row = cursor.fetchone()
    if row is None:
        return "the connected role was not found in pg_roles"
    superuser, bypass, owned = row
    if superuser:
        return "the app database role is a superuser (it bypasses row-level security)"
    if bypass:
        return "the app database role has BYPASSRLS"
    if owned:
        return (f"the app database role owns (or can act as the owner of) {owned} relations; "
                "use a separate owner role for migrations (DATABASE_OWNER_URL)")
    return None
