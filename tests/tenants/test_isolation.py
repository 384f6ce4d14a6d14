"""Tenant isolation in Python (fail-closed manager) and in PostgreSQL (RLS), including a
pooled connection that serves one org after another."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from tenants import context
from tenants.context import NoOrgContext, org_scope
from tenants.models import ApiKey, Environment, Membership
from tests.fixtures import OrgFixture


def _raw(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def _env_org_ids() -> set[str]:
    return {str(org) for (org,) in _raw("SELECT organization_id FROM tenants_environment")}


def _backend_pid() -> int:
    ((pid,),) = _raw("SELECT pg_backend_pid()")
    return int(pid)


# --- no org in context -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Environment, Membership, ApiKey])
def test_tenant_manager_without_org_raises(model: Any, org_a: OrgFixture) -> None:
    with pytest.raises(NoOrgContext):
        list(model.objects.all())
    with pytest.raises(NoOrgContext):
        model.objects.create()


@pytest.mark.django_db
def test_raw_sql_without_org_sees_no_rows(org_a: OrgFixture, org_b: OrgFixture) -> None:
    assert _raw("SELECT count(*) FROM tenants_environment") == [(0,)]
    assert _raw("SELECT count(*) FROM tenants_organization") == [(0,)]
    with org_a.scope():
        assert _raw("SELECT count(*) FROM tenants_environment") == [(3,)]


def test_raw_sql_without_org_sees_no_rows_after_a_transaction_set_one(
    committed_db: None, make_org: Any
) -> None:
    org_a = make_org("acme")
    pid = _backend_pid()
    with org_a.scope():
        assert _raw("SELECT count(*) FROM tenants_environment") == [(3,)]
    assert _backend_pid() == pid  # the very same connection
    # Autocommit (no transaction at all) and a new transaction: both see nothing.
    assert _raw("SELECT count(*) FROM tenants_environment") == [(0,)]
    with transaction.atomic():
        assert _raw("SELECT count(*) FROM tenants_environment") == [(0,)]
    with transaction.atomic():
        assert _raw("SELECT current_setting('app.org_id', true)") in ([("",)], [(None,)])


def test_pooled_connection_serves_two_orgs_in_turn_without_leaking(
    committed_db: None, make_org: Any
) -> None:
    org_a, org_b = make_org("acme"), make_org("globex")
    a, b = str(org_a.org.pk), str(org_b.org.pk)
    pid = _backend_pid()

    with org_scope(org_a.org):
        assert _env_org_ids() == {a}
        assert {str(e.organization_id) for e in Environment.objects.all()} == {a}
    with org_scope(org_b.org):
        assert _env_org_ids() == {b}
        assert _raw("SELECT id::text FROM tenants_organization") == [(b,)]
    with transaction.atomic():
        assert _env_org_ids() == set()
        assert _raw("SELECT count(*) FROM tenants_organization") == [(0,)]
    with org_scope(org_a.org):
        assert _env_org_ids() == {a}
    assert _env_org_ids() == set()
    assert _backend_pid() == pid


def test_switching_org_inside_one_transaction_follows_the_context(
    committed_db: None, make_org: Any
) -> None:
    org_a, org_b = make_org("acme"), make_org("globex")
    with transaction.atomic():
        with org_scope(org_a.org):
            assert _env_org_ids() == {str(org_a.org.pk)}
        with org_scope(org_b.org):
            assert _env_org_ids() == {str(org_b.org.pk)}
        assert _env_org_ids() == set()


class _Boom(Exception):
    pass


def test_rolled_back_savepoint_does_not_leave_the_database_on_another_org(
    committed_db: None, make_org: Any
) -> None:
    """set_config(..., true) made inside a savepoint is undone by its rollback; the guard
    must notice, or raw SQL would run as the previous org while Python says another."""
    org_a, org_b = make_org("acme"), make_org("globex")
    a, b = str(org_a.org.pk), str(org_b.org.pk)
    with org_scope(org_a.org):
        assert _env_org_ids() == {a}
        token = None
        try:
            with transaction.atomic():  # a savepoint, opened while the org is A
                token = context.activate(org_b.org)  # as authentication does mid-request
                assert _env_org_ids() == {b}  # B is set inside the savepoint
                raise _Boom
        except _Boom:
            pass
        # The rollback undid the database setting; the context still says B.
        assert context.current_org_id() == org_b.org.pk
        assert _env_org_ids() == {b}
        assert token is not None
        context.deactivate(token)
        assert _env_org_ids() == {a}


def test_savepoint_rollback_after_an_error_keeps_the_transaction_usable(
    committed_db: None, make_org: Any
) -> None:
    org_a, org_b = make_org("acme"), make_org("globex")
    with org_scope(org_a.org):
        assert _env_org_ids() == {str(org_a.org.pk)}
        with pytest.raises(DatabaseError), transaction.atomic():
            token = context.activate(org_b.org)
            try:
                _raw("SELECT no_such_column FROM tenants_environment")
            finally:
                context.deactivate(token)  # back to A before the savepoint rolls back
        # The savepoint rollback ran in an aborted transaction; the outer one still works.
        assert _env_org_ids() == {str(org_a.org.pk)}


# --- writes -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_insert_for_another_org_is_refused_by_with_check(
    org_a: OrgFixture, org_b: OrgFixture
) -> None:
    with org_a.scope():
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Environment.all_orgs.create(organization_id=org_b.org.pk, slug="evil", name="Evil")
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            _raw(
                "INSERT INTO tenants_environment (id, organization_id, slug, name, created_at) "
                "VALUES (gen_random_uuid(), %s, 'evil', 'Evil', now())", [org_b.org.pk]
            )
    with org_b.scope():
        assert not Environment.objects.filter(slug="evil").exists()


@pytest.mark.django_db
def test_moving_a_row_to_another_org_is_refused(org_a: OrgFixture, org_b: OrgFixture) -> None:
    with org_a.scope(), pytest.raises(DatabaseError, match="row-level security"), \
            transaction.atomic():
        _raw("UPDATE tenants_environment SET organization_id = %s", [org_b.org.pk])


@pytest.mark.django_db
def test_insert_without_org_is_refused(org_a: OrgFixture) -> None:
    with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
        _raw(
            "INSERT INTO tenants_environment (id, organization_id, slug, name, created_at) "
            "VALUES (gen_random_uuid(), %s, 'evil', 'Evil', now())", [org_a.org.pk]
        )


@pytest.mark.django_db
def test_update_and_delete_of_another_orgs_rows_touch_nothing(
    org_a: OrgFixture, org_b: OrgFixture
) -> None:
    with org_a.scope(), connection.cursor() as cursor:
        cursor.execute("UPDATE tenants_environment SET name = 'x' WHERE organization_id = %s",
                       [org_b.org.pk])
        assert cursor.rowcount == 0
        cursor.execute("DELETE FROM tenants_environment WHERE organization_id = %s",
                       [org_b.org.pk])
        assert cursor.rowcount == 0
    with org_b.scope():
        assert Environment.objects.count() == 3
        assert not Environment.objects.filter(name="x").exists()


@pytest.mark.django_db
def test_requests_leave_no_org_context_behind(org_a: OrgFixture) -> None:
    assert org_a.client("viewer").get("/api/v1/environments").status_code == 200
    assert context.current_org_id() is None
