"""An org that requires MFA: its members enrol before they can open any of its pages.

Checked by `frontend.access.org_view` (the one door into org pages) after the org is known:
nothing at all for orgs that do not require MFA, one indexed query for those that do.
API keys are not people and are not affected. A session signed in through this org's own
IdP (station.identity sets `station_sso_org`) is exempt: the IdP owns second factors there.
"""

from __future__ import annotations

from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from tenants.models import Organization

SSO_SESSION_KEY = "station_sso_org"  # set by station.identity after an SSO login


def needs_enrolment(request: HttpRequest, org: Organization) -> bool:
    if not org.require_mfa:
        return False
    if request.session.get(SSO_SESSION_KEY) == str(org.pk):
        return False
    return not is_mfa_enabled(request.user)


def enrolment_redirect(request: HttpRequest, org: Organization) -> HttpResponse | None:
    """A redirect to TOTP enrolment with a message, or None when the member may proceed."""
    if not needs_enrolment(request, org):
        return None
    messages.warning(
        request, f"{org.name} requires two-factor authentication. Set up an authenticator "
                 "app to continue; you can then return to the console.")
    return HttpResponseRedirect(reverse("mfa_activate_totp"))
