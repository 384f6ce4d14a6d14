"""Regression tests for the escalation paths an independent review found."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import verify_current_org
from station.core.errors import AccessDenied, Conflict
from tenants import services
from tenants.authz import Principal, effective_permissions, has_permission
from tenants.context import NoOrgTransaction, activate, deactivate
from tenants.models import ApiKey, Environment, Membership, User
from tests.fixtures import SYSTEM


def _narrow(org_a, user, env_slug, role):
    with org_a.scope():
        m = Membership.objects.get(user=user)
        env = Environment.objects.get(slug=env_slug)
        services.set_environment_role(actor=SYSTEM, membership=m, environment=env, role=role)
        return m, env


def test_narrowed_member_cannot_lift_their_own_narrowing(org_a, member):
    admin = member("admin@acme.example", "admin")
    m, prod = _narrow(org_a, admin, "prod", "viewer")
    with org_a.scope(), pytest.raises(AccessDenied):
        services.set_environment_role(actor=Principal.for_user(admin), membership=m,
                                      environment=prod, role=None)
    with org_a.scope():
        assert not has_permission(Principal.for_user(admin), "environments.delete",
                                  org_a.org, prod)


def test_member_narrowed_to_viewer_cannot_delete_or_rename_that_environment(org_a, member):
    admin = member("admin2@acme.example", "admin")
    _, prod = _narrow(org_a, admin, "prod", "viewer")
    with org_a.scope():
        with pytest.raises(AccessDenied):
            services.delete_environment(actor=Principal.for_user(admin), environment=prod)
        with pytest.raises(AccessDenied):
            services.update_environment(actor=Principal.for_user(admin), environment=prod,
                                        name="Mine")
        assert Environment.objects.filter(pk=prod.pk, name="Production").exists()


def test_member_narrowed_in_prod_cannot_change_others_narrowing_there(org_a, member):
    admin = member("admin3@acme.example", "admin")
    dev_user = member("dev3@acme.example", "developer")
    _narrow(org_a, admin, "prod", "viewer")
    with org_a.scope():
        target = Membership.objects.get(user=dev_user)
        prod = Environment.objects.get(slug="prod")
        with pytest.raises(AccessDenied):
            services.set_environment_role(actor=Principal.for_user(admin), membership=target,
                                          environment=prod, role="viewer")


def test_key_of_a_deleted_account_has_no_permissions(org_a, member):
    admin = member("gone@acme.example", "admin")
    key = org_a.key_object(org_a.key("admin", created_by=admin))
    with org_a.scope():
        # (Erasing a person across all orgs is the GDPR capability's platform path; here the
        # account is deleted inside the one org it belongs to.)
        Membership.objects.filter(user=admin).delete()
        User.objects.filter(pk=admin.pk).delete()
    with org_a.scope():
        key = ApiKey.objects.get(pk=key.pk)
        assert key.created_by_id is None and key.creator_kind == "user"
        assert effective_permissions(Principal.for_api_key(key), org_a.org) == frozenset()


def test_key_made_by_a_key_cannot_outlive_it_and_dies_with_it(org_a):
    with org_a.scope():
        parent = services.create_api_key(
            actor=SYSTEM, org=org_a.org, name="parent", role="admin",
            expires_at=timezone.now() + timedelta(hours=1)).api_key
        actor = Principal.for_api_key(parent)
        child = services.create_api_key(actor=actor, org=org_a.org, name="child",
                                        role="viewer").api_key
        assert child.expires_at == parent.expires_at and child.parent_id == parent.pk
        with pytest.raises(Exception, match="expires_at"):
            services.create_api_key(actor=actor, org=org_a.org, name="late", role="viewer",
                                    expires_at=timezone.now() + timedelta(days=30))
        services.revoke_api_key(actor=SYSTEM, api_key=parent)
        child.refresh_from_db()
        assert child.revoked_at is not None
        reasons = list(AuditEvent.objects.filter(action="apikey.revoked")
                       .values_list("changes", flat=True))
        assert {"reason": f"parent key {parent.display} revoked"} in reasons


def test_deactivated_owner_does_not_count_as_the_remaining_owner(org_a, member):
    other = member("sleepy@acme.example", "owner")
    User.objects.filter(pk=other.pk).update(is_active=False)
    with org_a.scope():
        me = Membership.objects.get(user=org_a.owner)
        with pytest.raises(Conflict):
            services.change_member_role(actor=SYSTEM, membership=me, role="admin")


def test_float_changes_keep_the_chain_verifiable(org_a):
    from audit import services as audit

    with org_a.scope():
        audit.record("organization.updated", actor=SYSTEM, target=org_a.org,
                     changes={"quota": 1e16, "ratio": 0.1, "neg": -0.0})
        assert verify_current_org().ok


def test_tenant_query_outside_a_transaction_fails_loudly(committed_db, make_org):
    org = make_org("autocommit-co")
    token = activate(org.org.pk)
    try:
        with pytest.raises(NoOrgTransaction):
            Environment.objects.count()
        with transaction.atomic():
            assert Environment.objects.count() == 3
    finally:
        deactivate(token)
