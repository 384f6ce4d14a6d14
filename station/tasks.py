"""Base task class: tasks take an `org_id` keyword and run inside that org's scope."""

from __future__ import annotations

from typing import Any

from celery import Task


class OrgTask(Task):
    """Runs the task body with the org context set from the `org_id` keyword argument.

    It does not open a transaction: task code opens short ones (`transaction.atomic()`) per
    step, so heartbeats and progress commit as they happen, and the database guard scopes
    each of them to the org. The context is reset when the task ends, so a worker process
    never carries one org's scope into the next task.
    """

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from tenants import context

        org_id = kwargs.get("org_id")
        if org_id is None:
            raise TypeError(f"{self.name} must be called with org_id=…")
        token = context.activate(org_id)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            context.deactivate(token)
