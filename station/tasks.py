"""Base task class: tasks take an `org_id` keyword and run inside that org's scope."""

from __future__ import annotations

from typing import Any

from celery import Task


class OrgTask(Task):
    """Runs the task body with the org context set from the `org_id` keyword argument.

    The context (and with it `app.org_id` in PostgreSQL) is reset when the task ends, so a
    worker process never carries one org's scope into the next task.
    """

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from tenants.context import org_scope

        org_id = kwargs.get("org_id")
        if org_id is None:
            raise TypeError(f"{self.name} must be called with org_id=…")
        with org_scope(org_id):
            return super().__call__(*args, **kwargs)
