"""Which org's IdP an email goes to, and which orgs refuse a person's password login."""

from __future__ import annotations

from tenants import platform
from tenants.context import org_scope
from tenants.models import User


def sso_login_path_for_email(email: str) -> str | None:
    """Where SSO starts for the email: its verified domain's org's SAML, else OIDC, login."""
    from django.urls import reverse

    from station.identity.models import OidcConnection, SamlConnection

    domain = email.strip().rpartition("@")[2].lower() if "@" in email else ""
    org_id = platform.org_of_verified_domain(domain) if domain else None
    if org_id is None:
        return None
    with org_scope(org_id):
        from tenants.models import Organization

        slug = Organization.objects.values_list("slug", flat=True).first()
        if slug is None:
            return None
        if SamlConnection.objects.filter(enabled=True).exists():
            return reverse("saml_login", args=[slug])
        if OidcConnection.objects.filter(enabled=True).exists():
            return reverse("openid_connect_login", kwargs={"provider_id": slug})
    return None


def enforcing_orgs(user: User) -> list[platform.OrgSummary]:
    """The user's orgs that enforce SSO (with the user's role in each)."""
    from station.identity.models import OidcConnection, SamlConnection

    found = []
    for org in platform.orgs_for_user(user.pk):
        with org_scope(org.id):
            if (SamlConnection.objects.filter(enabled=True, enforce_sso=True).exists()
                    or OidcConnection.objects.filter(enabled=True, enforce_sso=True).exists()):
                found.append(org)
    return found
