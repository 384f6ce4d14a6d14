"""Writes about accounts: the org's MFA requirement and ending sessions."""

from __future__ import annotations

import uuid

from allauth.mfa.utils import is_mfa_enabled
from django.db import transaction

from audit import services as audit
from station.accounts import sessions
from station.accounts.events import record_for_user
from station.accounts.models import UserSession
from station.core.errors import AccessDenied, InvalidInput, NotFound
from tenants.authz import Principal, authorize
from tenants.models import Membership, Organization, User


@transaction.atomic
def set_require_mfa(*, actor: Principal, org: Organization, required: bool) -> Organization:
    authorize(actor, "org.manage", org)
    before = org.require_mfa
    if before == required:
        return org
    if not required and actor.kind in ("api_key", "run"):
        # A bearer token proves no second factor: it may raise the bar, never lower it.
        raise AccessDenied("org.manage", "Only a person signed in to the console can lift the "
                                         "MFA requirement; an API key can only turn it on.")
    if required and actor.user is not None and not is_mfa_enabled(actor.user):
        # Otherwise the admin's own next page would be the enrolment page.
        raise InvalidInput.field("require_mfa", "Set up two-factor authentication for "
                                 "your own account first.")
    org.require_mfa = required
    org.save(update_fields=["require_mfa"])
    audit.record("organization.updated", actor=actor, target=org,
                 changes={"require_mfa": audit.change(before, required)})
    return org


@transaction.atomic
def revoke_own_session(*, user: User, session_id: uuid.UUID) -> None:
    """A person signs one of their own browsers out (someone else's session is a 404)."""
    if not user.is_authenticated:
        raise AccessDenied("Sign in first.")
    row = UserSession.objects.filter(pk=session_id, user_id=user.pk).first()
    if row is None:
        raise NotFound("No such session.")
    sessions.end_sessions([row.session_key])
    record_for_user("account.session_revoked", user=user,
                    changes={"ip": row.ip, "user_agent": row.user_agent,
                             "signed_in_at": row.created_at})


@transaction.atomic
def sign_out_everywhere(*, actor: Principal, membership: Membership) -> int:
    """An org admin ends every session of a member (sessions are per person, so this signs
    them out of every org). Audited in the admin's org; returns how many ended."""
    authorize(actor, "members.manage", membership.organization_id)
    ended = sessions.end_all_sessions(membership.user_id)
    audit.record("account.signed_out_everywhere", actor=actor, target=membership,
                 target_label=membership.user.email, changes={"sessions_ended": ended})
    return ended
