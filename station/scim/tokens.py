"""SCIM bearer tokens: format, keyed hash, and the token services (create, revoke, touch).

A token reads `scim_<token id>_<secret>`. The token id (public) finds the row across orgs
(platform.enter_org_of_scim_token); the secret is compared as an HMAC-SHA256 keyed with
API_KEY_PEPPER under a SCIM-specific label, in constant time. Only the hash and the last four
characters are stored; the plaintext exists in the response that creates it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from station.core.errors import InvalidInput
from station.scim.models import TOKEN_PREFIX, ScimToken
from tenants.authz import Principal, authorize
from tenants.context import org_scope
from tenants.models import Organization

_TOKEN_RE = re.compile(r"^scim_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
LAST_USED_RESOLUTION = timedelta(seconds=60)


def parse(plaintext: str) -> tuple[str, str] | None:
    match = _TOKEN_RE.match(plaintext.strip())
    return (match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> str:
    pepper = hashlib.sha256(b"station-scim-token:" + settings.API_KEY_PEPPER.encode()).digest()
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


@dataclass
class ScimPrincipal(Principal):
    """The actor of every SCIM change: the org's IdP, identified by its token.

    Audited as a system actor whose id is the token's id, so the log says which token did it.
    What it may do is bounded by the SCIM endpoints themselves (users, groups, memberships).
    """

    token_pk: uuid.UUID | None = None

    @property
    def actor_id(self) -> str | None:
        return str(self.token_pk) if self.token_pk else None


def principal_for(token: ScimToken) -> ScimPrincipal:
    return ScimPrincipal(kind="system", label=f"SCIM token {token.display}", token_pk=token.pk)


@dataclass(frozen=True)
class CreatedScimToken:
    token: ScimToken
    plaintext: str  # shown once, never stored


@transaction.atomic
def create_scim_token(*, actor: Principal, org: Organization, name: str) -> CreatedScimToken:
    authorize(actor, "org.manage", org)
    name = (name or "").strip()
    if not name:
        raise InvalidInput.field("name", "This field may not be blank.")
    if len(name) > 200:
        raise InvalidInput.field("name", "Use at most 200 characters.")
    token_id = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    token = ScimToken.objects.create(
        name=name, token_id=token_id, secret_hash=hash_secret(secret), last_four=secret[-4:],
        created_by=actor.user, created_by_key=actor.api_key)
    audit.record("scim.token_created", actor=actor, target=token, target_label=token.display,
                 changes={"name": name})
    return CreatedScimToken(token, f"{TOKEN_PREFIX}{token_id}_{secret}")


@transaction.atomic
def revoke_scim_token(*, actor: Principal, token: ScimToken) -> ScimToken:
    authorize(actor, "org.manage", token.organization_id)
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit.record("scim.token_revoked", actor=actor, target=token, target_label=token.display)
    return token


def touch_scim_token(token: ScimToken) -> None:
    """Record use at most once a minute, after the request commits (telemetry, not audited)."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    token_pk, org_id = token.pk, token.organization_id

    def _write() -> None:
        with org_scope(org_id):
            stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
            ScimToken.objects.filter(stale, pk=token_pk).update(last_used_at=now)

    transaction.on_commit(_write)
