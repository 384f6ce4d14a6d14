"""Test connection: an org admin runs a sign-in through the org's SAML or OIDC IdP that is
validated exactly like a real one but signs nobody in and provisions nothing.

The console starts it (`acs.start_saml_test`, `oidc_views.start_oidc_test`): the ordinary
SP-initiated request, with a *test marker* stored beside the AuthnRequest id / OIDC state in
this browser's session. The marker lives only on the server, so neither the IdP nor RelayState
can add it or remove it; the request id / state is single use, so a test's response can never
be answered as a sign-in and a sign-in's response never becomes a test. When the IdP answers,
`acs` / `oidc_views` run all their checks, then, for a test, hand the outcome here instead of
to `sso_login`: the provisioning rules run in plan-only mode (`provisioning.plan_sso_login`),
the result is audited (`identity.sso_test_succeeded` / `identity.sso_test_failed`) and kept in
this session for the console's result page, which only the tester's session can open.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from audit import services as audit
from station.identity import saml
from station.identity.models import GroupRoleMapping
from station.identity.provisioning import (
    Connection,
    SsoAssertion,
    SsoRefused,
    email_domain_verified,
    plan_sso_login,
)
from tenants.authz import Principal, authorize, has_permission
from tenants.models import Organization, User
from tenants.permissions import OWNER_ROLE

PERMISSION = "org.manage"
RESULTS_KEY = "station_sso_tests"
MAX_RESULTS = 5
# What a result keeps of the IdP's attributes / claims (it lives in the session).
MAX_ATTRIBUTES, MAX_VALUES, MAX_CHARS = 50, 50, 500


# --- starting a test ----------------------------------------------------------------------


def new_marker(*, actor: Principal, org: Organization) -> dict[str, str]:
    """The marker stored with the request id / state of a test: who started it, and the id
    of its result. Only a user with org.manage may start one."""
    authorize(actor, PERMISSION, org)
    assert actor.user is not None  # org.manage via the console is always a user
    return {"id": str(uuid.uuid4()), "tester": str(actor.user.pk), "org": str(org.pk)}


def marker(state: dict[str, Any] | None) -> dict[str, str] | None:
    """The test marker of a pending request's session state, or None for a real sign-in."""
    test = state.get("test") if isinstance(state, dict) else None
    return test if isinstance(test, dict) and test.get("id") and test.get("tester") else None


def tester(request: HttpRequest, org: Organization, test: dict[str, str]) -> Principal | None:
    """The tester, if this session is still theirs and they still hold org.manage."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated or str(user.pk) != test["tester"]:
        return None
    principal = Principal.for_user(user)
    if str(org.pk) != test.get("org") or not has_permission(principal, PERMISSION, org):
        return None
    return principal


# --- the dry run ----------------------------------------------------------------------------


def dry_run(*, connection: Connection, assertion: SsoAssertion) -> dict[str, Any]:
    """What a real sign-in with this assertion would do, from the provisioning rules themselves
    (`plan_sso_login`, which writes nothing), in display form."""
    email = assertion.email.strip().lower()
    domain = email.rpartition("@")[2] if "@" in email else ""
    mappings = list(GroupRoleMapping.objects.filter(group__in=assertion.groups)
                    .order_by("group").values_list("group", "role"))
    info: dict[str, Any] = {
        "email_domain": domain, "email_domain_verified": email_domain_verified(email),
        "mapped_groups": [list(m) for m in mappings], "default_role": connection.default_role,
    }
    try:
        plan = plan_sso_login(connection=connection, assertion=assertion)
    except SsoRefused as exc:
        return {**info, "refused": exc.reason, "message": exc.message,
                "hint": refusal_hint(exc.reason, domain, assertion.groups)}
    if plan.identity is not None:
        account = "existing"
    else:
        account = "link" if plan.user is not None else "create"
    current = plan.membership.role if plan.membership is not None else None
    # Owners are never changed by the IdP; otherwise a mapped group, else the default role.
    source = "owner" if current == OWNER_ROLE else "group" if mappings else "default"
    return {**info, "refused": None, "account": account,
            "account_email": plan.user.email if plan.user is not None else plan.email,
            "membership": ("create" if current is None
                           else "keep" if current == plan.role else "change"),
            "current_role": current, "role": plan.role, "role_source": source}


def received(assertion: SsoAssertion, attributes: dict[str, Any]) -> dict[str, Any]:
    """What the IdP sent, bounded in size (attribute values as lists of strings)."""
    shown: dict[str, list[str]] = {}
    for name, value in list(attributes.items())[:MAX_ATTRIBUTES]:
        values = value if isinstance(value, list | tuple) else [value]
        shown[str(name)[:MAX_CHARS]] = [str(v)[:MAX_CHARS] for v in values[:MAX_VALUES]]
    return {"subject": assertion.subject, "email": assertion.email, "name": assertion.name,
            "groups": assertion.groups[:MAX_VALUES], "attributes": shown}


# --- recording the outcome ----------------------------------------------------------------


@transaction.atomic
def record_success(*, actor: Principal, connection: Connection, test: dict[str, str],
                   protocol: str, assertion: SsoAssertion,
                   attributes: dict[str, Any]) -> dict[str, Any]:
    """A response that passed every check: audit it with the dry run's decision."""
    plan = dry_run(connection=connection, assertion=assertion)
    changes: dict[str, Any] = {
        "test_id": test["id"], "protocol": protocol, "idp": connection.idp_entity_id,
        "subject": assertion.subject, "email": assertion.email, "groups": assertion.groups,
        "role": plan.get("role"), "account": plan.get("account"),
        "would_refuse": plan["refused"]}
    audit.record("identity.sso_test_succeeded", actor=actor, target=connection,
                 target_label=connection.idp_entity_id, changes=changes)
    return _result(test, protocol, connection, ok=True,
                   received=received(assertion, attributes), plan=plan)


@transaction.atomic
def record_failure(*, actor: Principal, connection: Connection, test: dict[str, str],
                   protocol: str, reason: str, detail: str, org_slug: str) -> dict[str, Any]:
    """A response refused by a check a real sign-in runs: the same reason code, with a hint."""
    audit.record("identity.sso_test_failed", actor=actor, target=connection,
                 target_label=connection.idp_entity_id,
                 changes={"test_id": test["id"], "protocol": protocol, "reason": reason,
                          "detail": detail[:500]})
    return _result(test, protocol, connection, ok=False, reason=reason, detail=detail[:500],
                   hint=failure_hint(protocol, reason, detail, connection, org_slug))


def _result(test: dict[str, str], protocol: str, connection: Connection, *, ok: bool,
            **fields: Any) -> dict[str, Any]:
    return {"id": test["id"], "org": test["org"], "tester": test["tester"],
            "protocol": protocol, "idp": connection.idp_entity_id, "ok": ok,
            "at": timezone.now().isoformat(), **fields}


def answered(request: HttpRequest, org_slug: str, result: dict[str, Any]) -> HttpResponse:
    """Keep the result in this session only, and show it in the console."""
    results = dict(request.session.get(RESULTS_KEY, {}))
    results[result["id"]] = result
    request.session[RESULTS_KEY] = dict(list(results.items())[-MAX_RESULTS:])
    return HttpResponseRedirect(reverse("console:sso-test-result",
                                        kwargs={"org_slug": org_slug, "test_id": result["id"]}))


def result_for(session: SessionBase, *, test_id: str, org: Organization,
               user: Any) -> dict[str, Any] | None:
    """A test result of this session, for its tester, in this org; None otherwise."""
    result = session.get(RESULTS_KEY, {}).get(test_id)
    if (not isinstance(result, dict) or result.get("org") != str(org.pk)
            or result.get("tester") != str(getattr(user, "pk", ""))):
        return None
    return result


# --- hints: how to fix it at the IdP ------------------------------------------------------

# python3-saml's messages (its `detail`) → what to change; first match wins.
_SAML_DETAIL_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("deprecated signature algorithm", "deprecated digest algorithm"),
     "The IdP signs with SHA-1: set the signature algorithm to RSA-SHA256 and the digest "
     "algorithm to SHA-256."),
    (("assertion of the response is not signed", "no signature found"),
     "Assertion not signed: turn on assertion signing at the IdP (sign the assertion, not "
     "only the response), with RSA-SHA256."),
    (("signature validation failed", "invalid signature", "reference validation failed",
      "signed element"),
     "The signature does not verify with the certificate Station has: give Station the IdP's "
     "current signing certificate (or its metadata) again."),
    (("not a valid audience",),
     "Wrong audience: set the Audience URI (SP entity id) at the IdP to {sp_entity_id}."),
    (("was received at", "empty destination"),
     "Wrong destination: set the ACS URL (single sign-on URL) at the IdP to {acs_url}."),
    (("subjectconfirmation",),
     "Wrong recipient: set the ACS URL / Recipient at the IdP to {acs_url}."),
    (("invalid issuer", "issuer of the"),
     "Wrong issuer: Station expects the IdP entity id {idp}; set it here to the issuer the "
     "IdP sends (or import the IdP's metadata again)."),
    (("could not validate timestamp",),
     "The assertion is outside its validity window: check the clocks of the IdP and of "
     "Station's servers (NTP)."),
    (("inresponseto",),
     "The response does not answer this test's request: start the test again here and finish "
     "it in the same browser window."),
    (("status code",),
     "The IdP refused the sign-in: check that the test user is assigned to the application "
     "at the IdP."),
    (("nameid",),
     "No usable NameID: send a persistent NameID (a stable user id that is never reassigned)."),
)

_REASON_HINTS: dict[str, str] = {
    # SAML
    "unsolicited_response":
        "The IdP answered without InResponseTo (IdP-initiated). A test starts at Station: the "
        "IdP must answer the AuthnRequest it received.",
    "unknown_request":
        "The response answers no test this browser is waiting on: start the test again here.",
    "request_reused_or_expired":
        "The test's request was already answered or is older than 10 minutes: start again.",
    "replayed_assertion":
        "This assertion was accepted before: each response needs a fresh assertion ID. If it "
        "repeats on a new test, the IdP is reusing assertion IDs.",
    # OIDC
    "unknown_state": "The answer belongs to no test this browser started: start again here.",
    "state_expired": "The test took more than 10 minutes: start again.",
    "idp_error": "The IdP answered with an error: check that the test user is assigned to "
                 "the application, and the IdP's error below.",
    "no_code": "The IdP's answer had no authorization code: use the authorization-code flow.",
    "token_request_failed": "The token endpoint refused the code: check the client id and "
                            "secret, and that {redirect_uri} is a registered redirect URI.",
    "no_id_token": "The token response has no ID token: grant the openid scope.",
    "fetch_failed": "Station could not read the IdP's JWKS at {jwks_uri}: check the URI (or "
                    "read the endpoints again with discovery).",
    "fetch_refused": "The JWKS URI {jwks_uri} resolves to a non-public address.",
    "invalid_jwks": "The document at {jwks_uri} is not a JWKS with signing keys.",
    "unknown_key": "No key in {jwks_uri} matches the ID token's kid: check the JWKS URI, or "
                   "wait for the IdP's key rollover to publish the new key.",
    "bad_signature": "The ID token's signature does not verify with the IdP's key from "
                     "{jwks_uri}: check the issuer and JWKS URI belong to the same IdP.",
    "algorithm_not_allowed": "Sign ID tokens with an asymmetric algorithm (RS256, PS256, "
                             "ES256, EdDSA); none and HS* are refused.",
    "wrong_issuer": "Wrong issuer: Station expects iss = {issuer}; set the issuer here to "
                    "exactly what the IdP puts in its ID tokens.",
    "wrong_audience": "Wrong audience: the ID token's aud must be the client id {client_id} "
                      "(with several audiences, azp too); check the client id here.",
    "wrong_nonce": "The ID token's nonce is missing or not the one Station sent: the IdP must "
                   "copy the nonce of the authorization request into the ID token.",
    "expired": "The ID token is expired or too old: check the clocks of the IdP and of "
               "Station's servers (NTP).",
    "not_yet_valid": "The ID token is issued in the future: check the clocks of the IdP and "
                     "of Station's servers (NTP).",
    "invalid_id_token": "The ID token is malformed or lacks a required claim (iss, aud, exp, "
                        "iat, non-empty sub).",
}


def failure_hint(protocol: str, reason: str, detail: str, connection: Connection,
                 org_slug: str) -> str:
    values: dict[str, str] = {"idp": connection.idp_entity_id}
    if protocol == "saml":
        sp = saml.sp_values(org_slug)
        values.update(sp_entity_id=sp.entity_id, acs_url=sp.acs_url)
    else:
        from station.identity.oidc_views import redirect_uri

        values.update(redirect_uri=redirect_uri(org_slug), issuer=connection.idp_entity_id,
                      client_id=str(getattr(connection, "client_id", "")),
                      jwks_uri=str(getattr(connection, "jwks_uri", "")))
    if reason == "invalid_response":
        lowered = detail.lower()
        template = next((hint for needles, hint in _SAML_DETAIL_HINTS
                         if any(n in lowered for n in needles)),
                        "Compare the IdP's application with the values on the Single sign-on "
                        "page; the detail below is the validator's own message.")
    else:
        template = _REASON_HINTS.get(reason, "See the detail below.")
    return template.format(**values)


def refusal_hint(reason: str, domain: str, groups: list[str]) -> str:
    """How to fix a provisioning refusal (the IdP answered correctly)."""
    return {
        "no_email": "Send the user's email address (attribute email or mail; the email claim "
                    "in OIDC, with email_verified not false).",
        "email_domain_not_verified": f"Verify {domain or 'the email domain'} under Domains, or "
                                     "have the IdP send an address on a domain you verified.",
        "account_in_another_organization": "This address belongs to an account in another "
                                           "organization; your IdP cannot sign it in here.",
        "email_linked_to_another_subject": "This address is linked to another subject at your "
                                           "IdP: did the NameID / sub change? Send a stable, "
                                           "persistent identifier.",
        "no_mapped_group": "Map one of the user's groups ("
                           + (", ".join(groups[:10]) or "none sent")
                           + ") under Group mapping, or set a default role.",
        "account_disabled": "The Station account with this identity is disabled.",
    }.get(reason, "")


def start(request: HttpRequest, *, actor: Principal, org: Organization,
          protocol: str) -> HttpResponse:
    """Send this browser to the org's SAML or OIDC IdP as a connection test."""
    # The sign-in views own the request machinery (and import this module).
    from station.identity.acs import start_saml_test
    from station.identity.oidc_views import start_oidc_test

    begin = start_saml_test if protocol == "saml" else start_oidc_test
    return begin(request, actor=actor, org=org)
