"""The current organization: a ContextVar mirrored into PostgreSQL per transaction.

`org_scope(org)` sets the context for a block (it opens a transaction). The database guard is
an execute wrapper on every connection: before the first statement of each transaction it runs
`set_config('app.org_id', <org>, true)`, so row-level security sees the same org as Python.
The setting is transaction-local: it can never leak into the next request on a pooled
connection. With no org set, RLS policies see no rows (fail closed).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg.pq import TransactionStatus

_current_org: ContextVar[uuid.UUID | None] = ContextVar("station_org", default=None)


class NoOrgContext(RuntimeError):
    """A tenant-scoped query ran with no organization in context."""


class NoOrgTransaction(RuntimeError):
    """A query ran with an org in context but outside any transaction."""


def current_org_id() -> uuid.UUID | None:
    return _current_org.get()


def require_org_id() -> uuid.UUID:
    org_id = _current_org.get()
    if org_id is None:
        raise NoOrgContext("No organization in context: tenant data is not reachable here.")
    return org_id


def _as_uuid(org: Any) -> uuid.UUID:
    if isinstance(org, uuid.UUID):
        return org
    if hasattr(org, "pk"):
        return uuid.UUID(str(org.pk))
    return uuid.UUID(str(org))


def activate(org: Any) -> object:
    """Set the org for the rest of the current request/task; returns a token for `deactivate`."""
    return _current_org.set(_as_uuid(org))


def activate_in_database(org: Any) -> object:
    """Like `activate`, for when the current transaction's SQL already set app.org_id.

    Used by `platform.enter_org_of_api_key`, whose SQL function sets it in the same round trip
    as the lookup; the guard records that and does not set it again.
    """
    from django.db import connection

    org_id = _as_uuid(org)
    token = _current_org.set(org_id)
    if connection.in_atomic_block:
        setattr(connection, _MARK, str(org_id))
    return token


def deactivate(token: object) -> None:
    _current_org.reset(token)  # type: ignore[arg-type]


def clear() -> None:
    _current_org.set(None)


@contextmanager
def org_scope(org: Any) -> Iterator[uuid.UUID]:
    """Run a block as `org`, inside a transaction (the DB setting is transaction-local)."""
    org_id = _as_uuid(org)
    token = _current_org.set(org_id)
    try:
        with transaction.atomic():
            yield org_id
    finally:
        _current_org.reset(token)


@contextmanager
def org_context(org: Any) -> Iterator[uuid.UUID]:
    """Run a block as `org` without opening a transaction (what OrgTask does for a task):
    the block opens short transactions itself, which commit as it goes."""
    token = activate(org)
    try:
        yield _as_uuid(org)
    finally:
        deactivate(token)


@contextmanager
def no_org_scope() -> Iterator[None]:
    token = _current_org.set(None)
    try:
        yield
    finally:
        _current_org.reset(token)


# --- database guard -------------------------------------------------------------------------

_MARK = "_station_org_marker"
# Savepoint statements read no rows, and must run even in an aborted transaction.
_SAVEPOINT_SQL = ("SAVEPOINT ", "RELEASE SAVEPOINT ", "ROLLBACK TO SAVEPOINT ")


def _org_guard(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    connection: BaseDatabaseWrapper = context["connection"]
    raw = connection.connection
    if raw is None:
        return execute(sql, params, many, context)
    if connection.get_autocommit():
        if _current_org.get() is not None:
            # The org setting is transaction-local: outside a transaction it cannot be
            # applied, and the query would silently see nothing. Say so instead.
            raise NoOrgTransaction(
                "Tenant queries must run inside a transaction (transaction.atomic or "
                "org_scope); this one ran in autocommit with an org in context."
            )
        return execute(sql, params, many, context)
    if raw.info.transaction_status == TransactionStatus.IDLE:
        setattr(connection, _MARK, "")  # this statement begins a transaction: nothing set yet
    if isinstance(sql, str) and sql.startswith(_SAVEPOINT_SQL):
        result = execute(sql, params, many, context)
        if sql.startswith("ROLLBACK TO SAVEPOINT "):
            # The rollback undoes a set_config made inside the savepoint: the value in the
            # database is no longer known, so the next statement sets it again.
            setattr(connection, _MARK, None)
        return result
    org_id = _current_org.get()
    wanted = str(org_id) if org_id else ""
    if getattr(connection, _MARK, None) != wanted:
        with raw.cursor() as cursor:
            cursor.execute("SELECT set_config('app.org_id', %s, true)", [wanted])
        setattr(connection, _MARK, wanted)
    return execute(sql, params, many, context)


def install_org_guard(sender: Any, connection: BaseDatabaseWrapper, **_: Any) -> None:
    if connection.vendor == "postgresql" and _org_guard not in connection.execute_wrappers:
        connection.execute_wrappers.append(_org_guard)
