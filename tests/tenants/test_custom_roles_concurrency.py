"""Custom roles under concurrency: a role deleted while it is being assigned. Really
committed transactions on two connections (no django_db mark: that would wrap the test in
one transaction the threads cannot see)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from station.core.errors import Conflict, InvalidInput
from tenants import roles, services
from tenants.models import Membership
from tests.fixtures import SYSTEM


def _in_thread(target: Any) -> threading.Thread:
    def run() -> None:
        try:
            target()
        finally:
            connection.close()  # each thread has its own connection

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("first", ["assign", "delete"])
def test_deleting_a_role_while_it_is_being_assigned_never_leaves_a_dangling_name(
    committed_db: None, make_org: Any, first: str
) -> None:
    fx = make_org("racer")
    with fx.scope():
        services.create_custom_role(actor=SYSTEM, org=fx.org, name="deployer",
                                    permissions=["org.read", "agents.run"])
    holding, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def assign() -> None:
        try:
            with fx.scope():
                services.invite_member(actor=SYSTEM, org=fx.org, email="r@racer.example",
                                       role="deployer")
                if first == "assign":
                    holding.set()
                    release.wait(10)
            outcome["assign"] = "ok"
        except InvalidInput as exc:
            outcome["assign"] = exc

    def delete() -> None:
        try:
            with fx.scope():
                services.delete_custom_role(actor=SYSTEM, org=fx.org, name="deployer")
                if first == "delete":
                    holding.set()
                    release.wait(10)
            outcome["delete"] = "ok"
        except Conflict as exc:
            outcome["delete"] = exc

    leader = _in_thread(assign if first == "assign" else delete)
    assert holding.wait(10)
    follower = _in_thread(delete if first == "assign" else assign)
    follower.join(0.5)
    assert follower.is_alive(), "the second transaction should wait for the role's row lock"
    release.set()
    leader.join(10)
    follower.join(10)
    if first == "assign":
        assert outcome["assign"] == "ok" and isinstance(outcome["delete"], Conflict)
    else:
        assert outcome["delete"] == "ok" and isinstance(outcome["assign"], InvalidInput)
    with fx.scope():
        for m in Membership.objects.all():
            assert roles.role_exists(fx.org, m.role)
