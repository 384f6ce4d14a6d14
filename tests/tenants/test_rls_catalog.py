"""The live database catalog proves the tenancy fence: RLS on every tenant table, and an app
role that cannot step around it (no superuser, no BYPASSRLS, owns nothing, append-only audit)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def _tenant_tables() -> list[str]:
    return [
        name for (name,) in _rows(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
            "AND a.attname = 'organization_id' AND NOT a.attisdropped ORDER BY 1"
        )
    ]


TENANT_TABLES_AT_LEAST = {
    "tenants_environment", "tenants_membership", "tenants_environmentrole", "tenants_apikey",
    "tenants_idempotencyrecord", "audit_auditevent",
}


def test_catalog_finds_the_known_tenant_tables() -> None:
    assert set(_tenant_tables()) >= TENANT_TABLES_AT_LEAST


def _rls_flags(table: str) -> tuple[bool, bool]:
    ((enabled, forced),) = _rows(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE oid = %s::regclass", [f"public.{table}"]
    )
    return enabled, forced


def _isolation_policies(table: str, column: str) -> list[tuple[str, str, str]]:
    """Policies on `table` whose USING clause ties `column` to app.org_id."""
    rows = _rows(
        "SELECT policyname, cmd, qual, with_check, permissive FROM pg_policies "
        "WHERE schemaname = 'public' AND tablename = %s", [table]
    )
    return [
        (name, cmd, with_check or "")
        for name, cmd, qual, with_check, permissive in rows
        if qual and "app.org_id" in qual and column in qual and permissive == "PERMISSIVE"
    ]


def test_platform_index_tables_hold_only_ids_statuses_and_timestamps() -> None:
    from tenants.rls import PLATFORM_INDEX_TABLES

    for table, allowed in PLATFORM_INDEX_TABLES.items():
        columns = {name for (name,) in _rows(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped", [f"public.{table}"])}
        assert columns, f"{table} is missing"
        assert columns <= allowed, f"{table} grew columns {sorted(columns - allowed)}"


def test_every_tenant_table_has_forced_rls_and_an_org_policy() -> None:
    # Tables are found in the catalog (any column named organization_id), not listed by hand;
    # only the declared platform indexes (ids and timestamps, checked above) are exempt.
    from tenants.rls import PLATFORM_INDEX_TABLES

    problems = []
    tables = [t for t in _tenant_tables() if t not in PLATFORM_INDEX_TABLES]
    for name in [*tables, "tenants_organization"]:
        enabled, forced = _rls_flags(name)
        column = "id" if name == "tenants_organization" else "organization_id"
        policies = _isolation_policies(name, column)
        if not enabled:
            problems.append(f"{name}: row level security not enabled")
        if not forced:
            problems.append(f"{name}: row level security not forced (owner bypasses it)")
        if not policies:
            problems.append(f"{name}: no policy on {column} = app.org_id")
        elif not any(cmd == "ALL" and "app.org_id" in check for _, cmd, check in policies):
            problems.append(f"{name}: org policy has no WITH CHECK on app.org_id for writes")
    assert not problems, "\n".join(problems)


def test_extra_policies_on_tenant_tables_are_select_only() -> None:
    # Besides the org isolation policy, permissive policies only ever open rows for reading
    # (the narrow platform lookups): none may let a write through.
    rows = _rows(
        "SELECT tablename, policyname, cmd, qual FROM pg_policies WHERE schemaname = 'public'"
    )
    writable = [
        (table, name) for table, name, cmd, qual in rows
        if cmd != "SELECT" and not (qual and "app.org_id" in qual)
    ]
    assert not writable


def test_app_role_is_not_superuser_and_cannot_bypass_rls() -> None:
    ((user, superuser, bypass, createrole, createdb),) = _rows(
        "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
        "WHERE rolname = current_user"
    )
    assert (superuser, bypass, createrole, createdb) == (False, False, False, False), user


def test_app_role_is_not_a_member_of_a_privileged_role() -> None:
    # Membership in the owner role (or a superuser) would hand the app role its powers back.
    rows = _rows(
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
        "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user) "
        "AND (r.rolsuper OR r.rolbypassrls OR r.oid IN (SELECT relowner FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'))"
    )
    assert rows == []


def test_app_role_owns_nothing_in_public() -> None:
    owned = _rows(
        "SELECT 'relation', c.relname FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
        "AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) "
        "UNION ALL SELECT 'function', p.proname FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
        "AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) "
        "UNION ALL SELECT 'schema', nspname FROM pg_namespace "
        "WHERE nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) "
        "UNION ALL SELECT 'database', datname FROM pg_database "
        "WHERE datname = current_database() "
        "AND datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    )
    assert owned == []


def test_app_role_cannot_create_objects_in_public() -> None:
    ((can_create,),) = _rows("SELECT has_schema_privilege(current_user, 'public', 'CREATE')")
    assert can_create is False


@pytest.mark.parametrize("privilege", ["UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"])
def test_app_role_lacks_write_privileges_on_the_audit_log(privilege: str) -> None:
    ((has,),) = _rows(
        "SELECT has_table_privilege(current_user, 'public.audit_auditevent', %s)", [privilege]
    )
    assert has is False


def test_app_role_can_append_to_and_read_the_audit_log() -> None:
    ((insert, select),) = _rows(
        "SELECT has_table_privilege(current_user, 'public.audit_auditevent', 'INSERT'), "
        "has_table_privilege(current_user, 'public.audit_auditevent', 'SELECT')"
    )
    assert insert and select


def test_app_role_cannot_truncate_or_add_triggers_to_any_table() -> None:
    # TRUNCATE skips row-level security and TRIGGER would let the app role hook any write.
    rows = _rows(
        "SELECT c.relname, p.priv FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN (VALUES ('TRUNCATE'), ('TRIGGER')) AS p(priv) "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
        "AND has_table_privilege(current_user, c.oid, p.priv)"
    )
    assert rows == []


def test_audit_log_has_append_only_triggers_for_rows_and_truncate() -> None:
    rows = _rows(
        "SELECT tgname, tgenabled FROM pg_trigger "
        "WHERE tgrelid = 'public.audit_auditevent'::regclass AND NOT tgisinternal"
    )
    names = {name: enabled for name, enabled in rows}
    assert names.get("audit_no_update_delete") == "O"
    assert names.get("audit_no_truncate") == "O"
