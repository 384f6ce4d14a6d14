"""SCIM tokens: shown once, stored as a keyed hash, revocable, last-used, audited."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from station.core.errors import AccessDenied
from station.scim import tokens
from station.scim.models import ScimToken
from tenants.authz import Principal
from tests.fixtures import SYSTEM


def test_token_is_stored_as_a_keyed_hash(org_a):
    with org_a.scope():
        created = tokens.create_scim_token(actor=SYSTEM, org=org_a.org, name="Okta")
        row = ScimToken.objects.get(pk=created.token.pk)
    token_id, secret = tokens.parse(created.plaintext)
    assert created.plaintext.startswith("scim_")
    assert secret not in row.secret_hash and row.secret_hash == tokens.hash_secret(secret)
    assert row.last_four == secret[-4:]
    assert row.display == f"scim_{token_id}_…{secret[-4:]}"
    # Keyed differently from API keys: one hash can never stand in for the other.
    from tenants import apikeys

    assert apikeys.hash_secret(secret) != row.secret_hash


def test_only_org_admins_manage_tokens(org_a, member):
    developer = member("dev@acme.example", "developer")
    with org_a.scope(), pytest.raises(AccessDenied):
        tokens.create_scim_token(actor=Principal.for_user(developer), org=org_a.org, name="x")
    with org_a.scope():
        created = tokens.create_scim_token(actor=Principal.for_user(org_a.owner),
                                           org=org_a.org, name="Entra")
        with pytest.raises(AccessDenied):
            tokens.revoke_scim_token(actor=Principal.for_user(developer), token=created.token)


def test_create_and_revoke_are_audited(org_a):
    owner = Principal.for_user(org_a.owner)
    with org_a.scope():
        created = tokens.create_scim_token(actor=owner, org=org_a.org, name="Okta")
        tokens.revoke_scim_token(actor=owner, token=created.token)
        actions = list(AuditEvent.objects.filter(target_id=str(created.token.pk))
                       .order_by("sequence").values_list("action", flat=True))
    assert actions == ["scim.token_created", "scim.token_revoked"]


def test_use_records_last_used(scim_a, org_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert scim_a.get("ServiceProviderConfig").status_code == 200
    with org_a.scope():
        assert ScimToken.objects.get().last_used_at is not None


def test_blank_name_refused(org_a):
    from station.core.errors import InvalidInput

    with org_a.scope(), pytest.raises(InvalidInput):
        tokens.create_scim_token(actor=SYSTEM, org=org_a.org, name="  ")
