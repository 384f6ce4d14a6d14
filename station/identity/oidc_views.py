"""OIDC login for an org: the authorization-code flow with state, nonce and PKCE bound to the
browser session, then the ID token verified by `station.identity.oidc` and the same JIT
provisioning as SAML. Every outcome is audited in the org; the client secret is only ever
sent to the token endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from audit import services as audit
from station.core.errors import NotFound
from station.identity import jwks, oidc, oidc_secret, sso_test
from station.identity.acs import _refuse, safe_path
from station.identity.adapters import oidc_app_for_org
from station.identity.models import OidcConnection
from station.identity.provisioning import SsoAssertion, SsoRefused, idp_principal, sign_in
from tenants import platform
from tenants.authz import Principal
from tenants.context import org_scope

logger = logging.getLogger(__name__)

SESSION_KEY = "station_oidc_pending"
MAX_PENDING = 5
STATE_TTL_SECONDS = 600


def redirect_uri(org_slug: str) -> str:
    """The callback to register at the IdP; from STATION_PUBLIC_URL, never the Host header."""
    path = reverse("openid_connect_callback", kwargs={"provider_id": org_slug})
    return f"{settings.PUBLIC_URL.rstrip('/')}{path}"


def _connection(org_slug: str, request: HttpRequest, *,
                include_disabled: bool = False) -> tuple[Any, OidcConnection, Any]:
    org = platform.org_by_slug(org_slug)
    found = (oidc_app_for_org(org_slug, include_disabled=include_disabled)
             if org is not None else None)
    if org is None or found is None:
        raise Http404("No single sign-on for this organization.")
    app, connection = found
    return org, connection, app.get_provider(request)


@never_cache
@require_GET
def oidc_login(request: HttpRequest, provider_id: str) -> HttpResponse:
    _org, connection, provider = _connection(provider_id, request)
    return _redirect_to_idp(request, provider_id, connection, provider,
                            {"next": safe_path(request.GET.get("next"))})


def start_oidc_test(request: HttpRequest, *, actor: Principal, org: Any) -> HttpResponse:
    """The console's "test connection": the same authorization request as `oidc_login`, whose
    session state carries the test marker (org.manage required). Its answer signs nobody in."""
    test = sso_test.new_marker(actor=actor, org=org)
    # A connection is tested before it is turned on (that is the point of a test).
    found = oidc_app_for_org(org.slug, include_disabled=True)
    if found is None:
        raise NotFound("This organization has no OpenID Connect provider to test.")
    app, connection = found
    return _redirect_to_idp(request, org.slug, connection, app.get_provider(request),
                            {"next": None, "test": test})


def _redirect_to_idp(request: HttpRequest, org_slug: str, connection: OidcConnection,
                     provider: Any, extra: dict[str, Any]) -> HttpResponse:
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    pending = dict(request.session.get(SESSION_KEY, {}))
    pending[state] = {"org": org_slug, "nonce": nonce, "verifier": verifier,
                      "at": time.time(), **extra}
    request.session[SESSION_KEY] = dict(list(pending.items())[-MAX_PENDING:])
    query = urlencode({
        "response_type": "code", "client_id": connection.client_id,
        "redirect_uri": redirect_uri(org_slug),
        "scope": " ".join(provider.get_scope() or connection.scopes.split()),
        "state": state, "nonce": nonce, "code_challenge": challenge,
        "code_challenge_method": "S256"})
    sep = "&" if "?" in connection.authorization_endpoint else "?"
    return HttpResponseRedirect(f"{connection.authorization_endpoint}{sep}{query}")


def _fail(request: HttpRequest, connection: OidcConnection, reason: str, detail: str,
          message: str) -> HttpResponse:
    logger.warning("OIDC login refused for org %s: %s (%s)", connection.organization_id,
                   reason, detail)
    audit.record("identity.sso_login_failed", actor=idp_principal(connection),
                 target=connection, target_label=connection.issuer,
                 changes={"reason": reason, "detail": detail[:500]})
    return _refuse(request, message)


@never_cache
@require_GET
def oidc_callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    org, _connection_row, provider = _connection(provider_id, request, include_disabled=True)
    with org_scope(org.id):
        # Disabled too: it may answer a connection test (`_finish` refuses it any sign-in).
        connection = OidcConnection.objects.first()
        if connection is None:
            raise Http404("No single sign-on for this organization.")
        outcome = _finish(request, connection, provider, provider_id)
        if isinstance(outcome, HttpResponse):
            return outcome
        user, next_url = outcome
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session["station_sso_org"] = str(org.id)
    return HttpResponseRedirect(next_url or f"/o/{provider_id}/")


# The person-facing message of a refused step (the audit keeps the precise reason).
_MESSAGES = {
    "state_expired": "This sign-in has expired; start again.",
    "idp_error": "The identity provider did not sign you in.",
    "no_code": "The identity provider's answer was incomplete; start again.",
}


def _finish(request: HttpRequest, connection: OidcConnection, provider: Any,
            org_slug: str) -> HttpResponse | tuple[Any, str | None]:
    pending: dict[str, dict[str, Any]] = dict(request.session.get(SESSION_KEY, {}))
    state = pending.pop(request.GET.get("state", ""), None)
    request.session[SESSION_KEY] = pending  # a state is used once, whatever happens next
    if state is None or state.get("org") != org_slug:
        return _fail(request, connection, "unknown_state", "state was not sent by this browser",
                     "This sign-in was not started here; start again.")
    test = sso_test.marker(state)
    if test is not None:
        return _finish_test(request, connection, provider, org_slug, state, test)
    if not connection.enabled:  # only a test may go through a connection that is off
        return _fail(request, connection, "connection_disabled",
                     "single sign-on is turned off for this organization",
                     "Single sign-on is turned off for this organization.")
    try:
        claims = _verified_claims(request, connection, org_slug, state)
    except oidc.OidcError as exc:
        return _fail(request, connection, exc.reason, exc.detail,
                     _MESSAGES.get(exc.reason,
                                   "The identity provider's answer was not accepted."))
    assertion = _assertion(claims, connection, provider)
    try:
        result = sign_in(connection=connection, assertion=assertion,
                         details={"protocol": "oidc"})
    except SsoRefused as exc:
        return _fail(request, connection, exc.reason, f"subject {assertion.subject}",
                     exc.message)
    return result.user, state.get("next")


def _finish_test(request: HttpRequest, connection: OidcConnection, provider: Any,
                 org_slug: str, state: dict[str, Any], test: dict[str, str]) -> HttpResponse:
    """The answer to a connection test (its state is spent): every check, no sign-in."""
    tester = sso_test.tester(request, connection.organization, test)
    if tester is None:  # signed out, another user, or no longer allowed: no result here
        sso_test.record_failure(actor=idp_principal(connection), connection=connection,
                                test=test, protocol="oidc", reason="unknown_state",
                                detail="the test was answered in a session that is not its "
                                       "tester's", org_slug=org_slug)
        return _refuse(request, "This connection test was not started in this session.")
    try:
        claims = _verified_claims(request, connection, org_slug, state)
    except oidc.OidcError as exc:
        result = sso_test.record_failure(actor=tester, connection=connection, test=test,
                                         protocol="oidc", reason=exc.reason,
                                         detail=exc.detail, org_slug=org_slug)
    else:
        result = sso_test.record_success(
            actor=tester, connection=connection, test=test, protocol="oidc",
            assertion=_assertion(claims, connection, provider),
            # The nonce did its job; the claims as the IdP sent them are what helps.
            attributes={k: v for k, v in claims.items() if k != "nonce"})
    return sso_test.answered(request, org_slug, result)


def _verified_claims(request: HttpRequest, connection: OidcConnection, org_slug: str,
                     state: dict[str, Any]) -> dict[str, Any]:
    """Every check of the callback after its state, sign-in or test alike: age, the code
    exchanged with PKCE, the ID token verified (`oidc.verify_id_token`). OidcError if not."""
    if time.time() - float(state.get("at", 0)) > STATE_TTL_SECONDS:
        raise oidc.OidcError("state_expired", "the login took too long")
    if request.GET.get("error"):
        raise oidc.OidcError(
            "idp_error",
            f"{request.GET.get('error')}: {request.GET.get('error_description', '')}")
    code = request.GET.get("code", "")
    if not code:
        raise oidc.OidcError("no_code", "callback without a code")
    tokens = oidc.post_form(
        connection.token_endpoint,
        {"grant_type": "authorization_code", "code": code,
         "redirect_uri": redirect_uri(org_slug), "code_verifier": state["verifier"]},
        auth=(connection.client_id, oidc_secret.reveal(connection)), what="token endpoint")
    id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
    if not isinstance(id_token, str):
        raise oidc.OidcError("no_id_token", "the token response has no id_token")
    # The IdP's keys come from the shared cache (refetched once on an unknown kid).
    return jwks.verify_id_token(id_token, issuer=connection.issuer,
                                client_id=connection.client_id, nonce=state["nonce"],
                                jwks_uri=connection.jwks_uri, connection=str(connection.pk))


def _assertion(claims: dict[str, Any], connection: OidcConnection,
               provider: Any) -> SsoAssertion:
    email = claims.get("email") if claims.get("email_verified", True) is not False else ""
    common = provider.extract_common_fields({"id_token": claims})
    name = str(claims.get("name") or " ".join(
        p for p in (common.get("first_name"), common.get("last_name")) if p))
    groups = oidc.groups_from(claims, connection.groups_claim)
    return SsoAssertion(idp_entity_id=connection.issuer, subject=str(claims["sub"]),
                        email=str(email or ""), name=name, groups=groups)
