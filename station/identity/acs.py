"""SAML login: start (AuthnRequest) and finish (the ACS response), with the checks that
python3-saml leaves to us.

allauth's ACS view receives the IdP's cross-site POST, keeps it in a short-lived cookie and
redirects to `finish`, a same-site GET that carries our session cookie (SameSite=Lax). Here,
in order: the org's connection; python3-saml validation in strict mode with the session's
pending AuthnRequest id (signature, SHA-1 refused, audience, recipient, destination, issuer,
time window); InResponseTo required unless the org allows IdP-initiated login; the
AuthnRequest id consumed once across all processes (DB); the assertion id recorded in the
replay cache (DB, per IdP, until NotOnOrAfter); then JIT provisioning and the session login.
Every outcome is audited in the org.
"""

from __future__ import annotations

import binascii
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from allauth.core.internal import httpkit
from allauth.socialaccount.providers.saml.utils import build_auth
from allauth.socialaccount.sessions import LoginSession
from django.contrib.auth import login
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError

from audit import services as audit
from station.core.errors import NotFound
from station.identity import saml, sso_test
from station.identity.adapters import saml_app_for_org
from station.identity.models import SamlAssertionSeen, SamlConnection, SamlRequest
from station.identity.provisioning import SsoAssertion, SsoRefused, idp_principal, sign_in
from tenants import platform
from tenants.authz import Principal
from tenants.context import org_scope

logger = logging.getLogger(__name__)

SESSION_KEY = "station_saml_requests"
MAX_PENDING = 5
# Kept in the replay cache when an assertion carries no NotOnOrAfter.
DEFAULT_REPLAY_SECONDS = 24 * 3600


def safe_path(value: str | None) -> str | None:
    """A same-origin path (`/…`, not `//host`, no scheme, no backslash) or None."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return None
    return value


def _refuse(request: HttpRequest, message: str, status: int = 403) -> HttpResponse:
    return render(request, "identity/sso_error.html", {"message": message}, status=status)


def _provider(org_slug: str, request: HttpRequest, *, include_disabled: bool = False) -> Any:
    app = saml_app_for_org(org_slug, include_disabled=include_disabled)
    if app is None:
        raise Http404("No single sign-on for this organization.")
    return app.get_provider(request)


@never_cache
@require_GET
def saml_login(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Send the browser to the org's IdP with a fresh AuthnRequest, remembered twice: in this
    session (binds the response to this browser) and in the database (single use)."""
    org = platform.org_by_slug(organization_slug)
    if org is None:
        raise Http404("No single sign-on for this organization.")
    return _send_authn_request(request, org, organization_slug,
                               {"next": safe_path(request.GET.get("next"))})


def start_saml_test(request: HttpRequest, *, actor: Principal, org: Any) -> HttpResponse:
    """The console's "test connection": an AuthnRequest like `saml_login`'s, whose session
    state carries the test marker (org.manage required). Its answer signs nobody in."""
    test = sso_test.new_marker(actor=actor, org=org)
    # A connection is tested before it is turned on (that is the point of a test).
    if saml_app_for_org(org.slug, include_disabled=True) is None:
        raise NotFound("This organization has no SAML identity provider to test.")
    return _send_authn_request(request, org, org.slug, {"next": None, "test": test})


def _send_authn_request(request: HttpRequest, org: Any, organization_slug: str,
                        state: dict[str, Any]) -> HttpResponse:
    provider = _provider(organization_slug, request, include_disabled="test" in state)
    auth = build_auth(request, provider)
    redirect_url = auth.login(return_to="")
    request_id = auth.get_last_request_id()
    with org_scope(org.id):
        SamlRequest.objects.create(
            organization_id=org.id, request_id=request_id,
            expires_at=timezone.now() + timedelta(seconds=saml.REQUEST_TTL_SECONDS))
    pending = dict(request.session.get(SESSION_KEY, {}))
    pending[request_id] = {"org": organization_slug, **state}
    request.session[SESSION_KEY] = dict(list(pending.items())[-MAX_PENDING:])
    return HttpResponseRedirect(redirect_url)


@never_cache
def saml_finish(request: HttpRequest, organization_slug: str) -> HttpResponse:
    org = platform.org_by_slug(organization_slug)
    if org is None:
        raise Http404("No single sign-on for this organization.")
    acs_session = LoginSession(request, "saml_acs_session", "saml-acs-session")
    data = acs_session.store.get("request")
    acs_session.delete()
    if not data:
        return _refuse(request, "The sign-in response was not found; start again.", 400)
    acs_request = httpkit.deserialize_request(data, HttpRequest())
    with org_scope(org.id):
        # Disabled too: it may answer a connection test (`_finish` refuses it any sign-in).
        connection = SamlConnection.objects.first()
        if connection is None:
            raise Http404("No single sign-on for this organization.")
        provider = _provider(organization_slug, request, include_disabled=True)
        outcome = _finish(request, acs_request, connection, provider, organization_slug)
        if isinstance(outcome, HttpResponse):
            return outcome
        user, next_url = outcome
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session["station_sso_org"] = str(org.id)
    return HttpResponseRedirect(next_url or f"/o/{organization_slug}/")


def _fail(request: HttpRequest, connection: SamlConnection, reason: str, detail: str,
          message: str) -> HttpResponse:
    logger.warning("SAML login refused for org %s: %s (%s)", connection.organization_id,
                   reason, detail)
    audit.record("identity.sso_login_failed", actor=idp_principal(connection),
                 target=connection, target_label=connection.idp_entity_id,
                 changes={"reason": reason, "detail": detail[:500]})
    return _refuse(request, message)


@dataclass(frozen=True)
class _Refusal:
    reason: str
    detail: str
    message: str


def _finish(request: HttpRequest, acs_request: HttpRequest, connection: SamlConnection,
            provider: Any, org_slug: str) -> HttpResponse | tuple[Any, str | None]:
    pending: dict[str, dict[str, Any]] = dict(request.session.get(SESSION_KEY, {}))
    # The AuthnRequest this browser is waiting on for this org (the newest one).
    expected = next((rid for rid, st in reversed(pending.items()) if st.get("org") == org_slug),
                    None)
    test = sso_test.marker(pending.get(expected) if expected else None)
    if test is not None and expected is not None:
        # Whatever answers a test — valid, invalid, unsolicited — is the test's answer: it
        # goes through every check below and never on to a sign-in.
        return _finish_test(request, acs_request, connection, provider, org_slug, pending,
                            expected, test)
    if not connection.enabled:  # only a test may go through a connection that is off
        return _fail(request, connection, "connection_disabled",
                     "single sign-on is turned off for this organization",
                     "Single sign-on is turned off for this organization.")
    outcome = _validate(request, acs_request, connection, provider, org_slug, pending,
                        expected, test=False)
    if isinstance(outcome, _Refusal):
        return _fail(request, connection, outcome.reason, outcome.detail, outcome.message)
    auth, state, in_response_to = outcome
    next_url = (state.get("next") if state is not None
                else safe_path(acs_request.POST.get("RelayState")))
    assertion = _assertion(auth, provider, connection)
    try:
        result = sign_in(connection=connection, assertion=assertion,
                         details={"idp_initiated": not in_response_to})
    except SsoRefused as exc:
        return _fail(request, connection, exc.reason, f"subject {assertion.subject}",
                     exc.message)
    return result.user, next_url


def _finish_test(request: HttpRequest, acs_request: HttpRequest, connection: SamlConnection,
                 provider: Any, org_slug: str, pending: dict[str, dict[str, Any]],
                 expected: str, test: dict[str, str]) -> HttpResponse:
    org = connection.organization
    tester = sso_test.tester(request, org, test)
    if tester is None:  # signed out, another user, or no longer allowed: no result here
        pending.pop(expected, None)
        request.session[SESSION_KEY] = pending
        sso_test.record_failure(actor=idp_principal(connection), connection=connection,
                                test=test, protocol="saml", reason="unknown_request",
                                detail="the test was answered in a session that is not its "
                                       "tester's", org_slug=org_slug)
        return _refuse(request, "This connection test was not started in this session.")
    outcome = _validate(request, acs_request, connection, provider, org_slug, pending,
                        expected, test=True)
    # A test is answered once, whatever the answer (the valid path popped it already).
    pending.pop(expected, None)
    request.session[SESSION_KEY] = pending
    if isinstance(outcome, _Refusal):
        result = sso_test.record_failure(actor=tester, connection=connection, test=test,
                                         protocol="saml", reason=outcome.reason,
                                         detail=outcome.detail, org_slug=org_slug)
    else:
        auth = outcome[0]
        result = sso_test.record_success(
            actor=tester, connection=connection, test=test, protocol="saml",
            assertion=_assertion(auth, provider, connection),
            attributes=auth.get_attributes())
    return sso_test.answered(request, org_slug, result)


def _validate(request: HttpRequest, acs_request: HttpRequest, connection: SamlConnection,
              provider: Any, org_slug: str, pending: dict[str, dict[str, Any]],
              expected: str | None, *, test: bool,
              ) -> _Refusal | tuple[OneLogin_Saml2_Auth, dict[str, Any] | None, str | None]:
    """Every check of a response, real sign-in or test alike: python3-saml in strict mode,
    InResponseTo bound to this session and used once, the replay cache. Returns the accepted
    response, the session state of the request it answers (None if unsolicited) and its id."""
    auth: OneLogin_Saml2_Auth = build_auth(acs_request, provider)
    try:
        auth.process_response(request_id=expected)
    except (binascii.Error, OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError) as exc:
        return _Refusal("invalid_response", str(exc),
                        "The identity provider's response was not accepted.")
    errors = auth.get_errors()
    if errors or not auth.is_authenticated():
        return _Refusal("invalid_response",
                        auth.get_last_error_reason() or ", ".join(errors) or "not authenticated",
                        "The identity provider's response was not accepted.")

    in_response_to = auth.get_last_response_in_response_to()
    state: dict[str, Any] | None = None
    if in_response_to:
        state = pending.pop(in_response_to, None)
        request.session[SESSION_KEY] = pending
        if state is None or state.get("org") != org_slug:
            return _Refusal("unknown_request",
                            f"InResponseTo {in_response_to} was not sent by this browser",
                            "This sign-in was not started here; start again.")
        used = SamlRequest.objects.filter(
            request_id=in_response_to, used_at__isnull=True, expires_at__gt=timezone.now(),
        ).update(used_at=timezone.now())
        if used != 1:
            return _Refusal("request_reused_or_expired",
                            f"AuthnRequest {in_response_to} already answered or expired",
                            "This sign-in was already used or has expired; start again.")
    elif test or not connection.allow_idp_initiated:
        # A test always answers its AuthnRequest: an unsolicited response is never one.
        return _Refusal("unsolicited_response",
                        "no InResponseTo and IdP-initiated login is off" if not test
                        else "no InResponseTo in the answer to a connection test",
                        "Sign-in must start from Station for this organization.")

    replay = _remember_assertion(connection, auth)
    if replay is not None:
        return _Refusal("replayed_assertion", replay, "This sign-in response was already used.")
    return auth, state, in_response_to


def _assertion(auth: OneLogin_Saml2_Auth, provider: Any,
               connection: SamlConnection) -> SsoAssertion:
    common = provider.extract_common_fields(auth)
    attributes = auth.get_attributes()
    groups = [str(g) for g in attributes.get(connection.group_attribute, [])] \
        if connection.group_attribute else []
    name = " ".join(p for p in (common.get("first_name"), common.get("last_name")) if p)
    return SsoAssertion(idp_entity_id=connection.idp_entity_id,
                        subject=str(auth.get_nameid()), email=common.get("email") or "",
                        name=name, groups=groups)


def _remember_assertion(connection: SamlConnection, auth: OneLogin_Saml2_Auth) -> str | None:
    """Record the assertion id (replay cache); a description if it was seen before."""
    assertion_id = auth.get_last_assertion_id()
    if not assertion_id:
        return "assertion without an ID"
    expiry = auth.get_last_assertion_not_on_or_after()
    now = timezone.now()
    until = (datetime.fromtimestamp(expiry, tz=UTC) if expiry
             else now + timedelta(seconds=DEFAULT_REPLAY_SECONDS))
    SamlAssertionSeen.objects.filter(not_on_or_after__lt=now - timedelta(minutes=5)).delete()
    try:
        with transaction.atomic():
            SamlAssertionSeen.objects.create(
                organization_id=connection.organization_id,
                idp_entity_id=connection.idp_entity_id, assertion_id=assertion_id,
                not_on_or_after=max(until, now) + timedelta(minutes=5))
    except IntegrityError:
        return f"assertion {assertion_id} from {connection.idp_entity_id} seen before"
    return None
