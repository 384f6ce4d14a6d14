"""Row-level security declared with the models, so migrations carry it.

`RowLevelSecurity` is a Django constraint whose SQL enables and forces RLS on the model's
table and creates one policy limiting every statement to the org in `app.org_id`. Tenant
models inherit it from `TenantModel.Meta`; a system check refuses a tenant model without it,
and tests/tenants/test_rls_catalog.py checks the live database catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core import checks
from django.db import models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.ddl_references import Statement

ORG_SETTING = "NULLIF(current_setting('app.org_id', true), '')::uuid"


class RowLevelSecurity(models.BaseConstraint):
    """ENABLE + FORCE row-level security with an org isolation policy on `field`."""

    def __init__(self, *, name: str, field: str = "organization_id", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.field = field

    def create_sql(
        self, model: type[models.Model] | None, schema_editor: BaseDatabaseSchemaEditor | None
    ) -> Any:
        assert model is not None and schema_editor is not None
        table = schema_editor.quote_name(model._meta.db_table)
        column = schema_editor.quote_name(self.field)
        policy = schema_editor.quote_name(self.name)
        return Statement(
            "ALTER TABLE %(table)s ENABLE ROW LEVEL SECURITY; "
            "ALTER TABLE %(table)s FORCE ROW LEVEL SECURITY; "
            "CREATE POLICY %(policy)s ON %(table)s USING (%(column)s = %(org)s) "
            "WITH CHECK (%(column)s = %(org)s)",
            table=table,
            policy=policy,
            column=column,
            org=ORG_SETTING,
        )

    def constraint_sql(
        self, model: type[models.Model] | None, schema_editor: BaseDatabaseSchemaEditor | None
    ) -> str:
        # Called by CREATE TABLE: the policy must follow the table, so defer it.
        assert schema_editor is not None
        schema_editor.deferred_sql.append(self.create_sql(model, schema_editor))
        return ""

    def remove_sql(
        self, model: type[models.Model] | None, schema_editor: BaseDatabaseSchemaEditor | None
    ) -> Any:
        assert model is not None and schema_editor is not None
        table = schema_editor.quote_name(model._meta.db_table)
        return Statement(
            "DROP POLICY IF EXISTS %(policy)s ON %(table)s; "
            "ALTER TABLE %(table)s NO FORCE ROW LEVEL SECURITY; "
            "ALTER TABLE %(table)s DISABLE ROW LEVEL SECURITY",
            table=table,
            policy=schema_editor.quote_name(self.name),
        )

    def validate(self, *args: Any, **kwargs: Any) -> None:
        return None  # enforced by PostgreSQL, nothing to validate in Python

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        path, args, kwargs = super().deconstruct()
        kwargs["field"] = self.field
        return path, args, kwargs

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowLevelSecurity):
            return self.name == other.name and self.field == other.field
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash((self.name, self.field))


# Cross-org platform indexes: tables that carry an organization id but deliberately no RLS,
# because beat-driven jobs with no org (the run reaper, the fair dispatcher) must read every
# org's rows. They may hold ids, statuses and timestamps only, never tenant data; the RLS
# catalog test enforces that column list.
PLATFORM_INDEX_TABLES: dict[str, frozenset[str]] = {
    "runs_activerun": frozenset({"run_id", "organization_id", "status", "queued_at",
                                 "heartbeat_at"}),
}


def check_tenant_models_have_rls(app_configs: Any = None, **_: Any) -> list[checks.CheckMessage]:
    from django.apps import apps

    errors: list[checks.CheckMessage] = []
    for model in apps.get_models():
        fields = {f.attname for f in model._meta.concrete_fields}
        if "organization_id" not in fields or model._meta.db_table in PLATFORM_INDEX_TABLES:
            continue
        if not any(isinstance(c, RowLevelSecurity) for c in model._meta.constraints):
            errors.append(
                checks.Error(
                    f"{model._meta.label} has organization_id but no RowLevelSecurity "
                    "constraint; inherit Meta from tenants.models.TenantModel.Meta.",
                    obj=model,
                    id="station.E001",
                )
            )
    return errors
