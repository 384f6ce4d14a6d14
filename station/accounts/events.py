"""Identity events of a person, recorded in the audit log of every org they belong to.

Audit chains are per org and a sign-in is not tied to one org, so each of the person's orgs
gets its own copy of the event. Events about an email that matches no account are logged,
not audited: there is no org to put them in (and recording them would leak guesses).
"""

from __future__ import annotations

import logging
from typing import Any

from audit import services as audit
from tenants import platform
from tenants.authz import Principal
from tenants.context import org_scope
from tenants.models import User

logger = logging.getLogger("station.accounts")


def record_for_user(action: str, *, user: User, actor: Principal | None = None,
                    changes: dict[str, Any] | None = None) -> int:
    """Record `action` about `user` in each of the user's orgs; returns how many."""
    orgs = platform.orgs_for_user(user.pk)
    for org in orgs:
        with org_scope(org.id):
            audit.record(action, actor=actor or Principal.for_user(user), target=user,
                         target_label=user.email, changes=changes)
    if not orgs:
        logger.info("%s for %s (no organization to audit in): %s", action, user.pk, changes)
    return len(orgs)
