"""Which org's IdP an email goes to, and which orgs refuse a person's password login."""

from __future__ import annotations

from tenants import platform
from tenants.context import org_scope
from tenants.models import User


def sso_org_for_email(email: str) -> str | None:
    """The slug of the org whose verified domain the email is on, if it has SAML enabled."""
    from station.identity.models import SamlConnection

    domain = email.strip().rpartition("@")[2].lower() if "@" in email else ""
    org_id = platform.org_of_verified_domain(domain) if domain else None
    if org_id is None:
        return None
    with org_scope(org_id):
        if not SamlConnection.objects.filter(enabled=True).exists():
            return None
        from tenants.models import Organization

        return Organization.objects.values_list("slug", flat=True).first()


def enforcing_orgs(user: User) -> list[platform.OrgSummary]:
    """The user's orgs that enforce SSO (with the user's role in each)."""
    from station.identity.models import SamlConnection

    found = []
    for org in platform.orgs_for_user(user.pk):
        with org_scope(org.id):
            if SamlConnection.objects.filter(enabled=True, enforce_sso=True).exists():
                found.append(org)
    return found
