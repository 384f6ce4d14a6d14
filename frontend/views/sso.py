"""Console pages for single sign-on: SAML setup (with the SP values the IdP needs), verified
domains (add, verify by DNS, remove) and IdP group → role mappings. All need `org.manage`."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache

from frontend.access import OrgRequest, org_view
from frontend.forms import add_service_error, org_role_choices
from station.core.errors import StationError
from station.identity import saml, services, sso_test
from station.identity.models import GroupRoleMapping, SamlConnection, VerifiedDomain


def _idp_roles() -> list[tuple[str, str]]:
    """Roles an IdP may grant: the org's built-in (never owner) and custom roles."""
    return [choice for choice in org_role_choices() if choice[0] != "owner"]


def _default_roles() -> list[tuple[str, str]]:
    return [("", "— refuse sign-in —"), *_idp_roles()]


class SamlForm(forms.Form):
    # Never pre-filled: giving it fetches the metadata on save, an explicit act each time.
    metadata_url = forms.CharField(
        required=False, max_length=2000, label="IdP metadata URL",
        help_text="https:// — Station reads the metadata from it once, when you save.")
    metadata_xml = forms.CharField(
        required=False, label="IdP metadata XML",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="Or paste the metadata your IdP gives you, or fill in the three fields below.")
    entity_id = forms.CharField(required=False, max_length=1000, label="IdP entity id")
    sso_url = forms.CharField(required=False, max_length=2000, label="IdP single sign-on URL",
                              help_text="https://, HTTP-Redirect binding.")
    x509cert = forms.CharField(
        required=False, label="IdP signing certificate (PEM)",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}))
    enabled = forms.BooleanField(required=False, initial=True)
    enforce_sso = forms.BooleanField(
        required=False, label="Enforce SSO",
        help_text="Members cannot sign in with a password; owners keep an audited "
                  "break-glass sign-in.")
    allow_idp_initiated = forms.BooleanField(
        required=False, label="Allow IdP-initiated sign-in",
        help_text="Off is safer: only responses to sign-ins started in Station are accepted.")
    group_attribute = forms.CharField(required=False, max_length=500, initial="groups",
                                      help_text="The SAML attribute that lists the groups.")
    default_role = forms.ChoiceField(
        required=False, choices=_default_roles, initial="viewer",
        help_text="Role for people none of whose groups is mapped.")


@never_cache
@org_view("org.manage")
def sso_setup(request: OrgRequest) -> HttpResponse:
    connection = SamlConnection.objects.first()
    initial = {name: getattr(connection, name) for name in (
        "enabled", "enforce_sso", "allow_idp_initiated", "group_attribute", "default_role")
    } if connection else None
    form = SamlForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.configure_saml(actor=request.principal, org=request.org,
                                    **form.cleaned_data)
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, "Single sign-on settings saved.")
            return redirect("console:sso", org_slug=request.org.slug)
    return render(request, "console/sso/setup.html", {
        "form": form, "connection": connection, "sp": saml.sp_values(request.org.slug),
        "domains": VerifiedDomain.objects.all(),
    })


@org_view("org.manage")
def sso_refresh_metadata(request: OrgRequest) -> HttpResponse:
    """Read the IdP metadata again from its stored URL (e.g. after a certificate rollover)."""
    if request.method == "POST":
        try:
            services.configure_saml(actor=request.principal, org=request.org,
                                    refresh_metadata=True)
        except StationError as exc:
            reasons = [m for ms in (exc.errors or {}).values() for m in ms]
            messages.error(request, " ".join(reasons) or exc.detail)
        else:
            messages.success(request, "The IdP metadata was read again from its URL.")
    return redirect("console:sso", org_slug=request.org.slug)


@org_view("org.manage")
def sso_remove(request: OrgRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            services.remove_saml(actor=request.principal, org=request.org)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, "The SAML identity provider was removed.")
        return redirect("console:sso", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": "Remove the SAML identity provider?",
        "body": "Nobody can sign in through it any more; SSO enforcement stops with it.",
        "confirm_label": "Remove", "danger": True, "cancel_url": "console:sso",
    })


class DomainForm(forms.Form):
    domain = forms.CharField(max_length=253, help_text="e.g. example.com")


@never_cache
@org_view("org.manage")
def domain_list(request: OrgRequest) -> HttpResponse:
    form = DomainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            row = services.add_domain(actor=request.principal, org=request.org,
                                      domain=form.cleaned_data["domain"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Publish the TXT record for {row.domain}, then verify.")
            return redirect("console:sso-domains", org_slug=request.org.slug)
    return render(request, "console/sso/domains.html", {
        "form": form, "domains": VerifiedDomain.objects.all()})


@org_view("org.manage")
def domain_verify(request: OrgRequest, domain_id: uuid.UUID) -> HttpResponse:
    row = get_object_or_404(VerifiedDomain, pk=domain_id)
    if request.method == "POST":
        try:
            services.verify_domain(actor=request.principal, domain=row)
        except StationError as exc:
            reasons = [m for ms in (exc.errors or {}).values() for m in ms]
            messages.error(request, " ".join(reasons) or exc.detail)
        else:
            messages.success(request, f"{row.domain} is verified.")
    return redirect("console:sso-domains", org_slug=request.org.slug)


@org_view("org.manage")
def domain_delete(request: OrgRequest, domain_id: uuid.UUID) -> HttpResponse:
    row = get_object_or_404(VerifiedDomain, pk=domain_id)
    if request.method == "POST":
        services.remove_domain(actor=request.principal, domain=row)
        messages.success(request, f"{row.domain} removed.")
        return redirect("console:sso-domains", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": f"Remove {row.domain}?",
        "body": "Sign-ins with this email domain are no longer sent to your identity provider.",
        "confirm_label": "Remove", "danger": True, "cancel_url": "console:sso-domains",
    })


class GroupMappingForm(forms.Form):
    group = forms.CharField(max_length=500, help_text="As your IdP sends it.")
    role = forms.ChoiceField(choices=_idp_roles)


@never_cache
@org_view("org.manage")
def group_list(request: OrgRequest) -> HttpResponse:
    form = GroupMappingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.set_group_mapping(actor=request.principal, org=request.org,
                                       **form.cleaned_data)
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, "Group mapping saved; it applies at each member's next "
                                      "sign-in.")
            return redirect("console:sso-groups", org_slug=request.org.slug)
    return render(request, "console/sso/groups.html", {
        "form": form, "mappings": GroupRoleMapping.objects.all()})


@org_view("org.manage")
def group_delete(request: OrgRequest, mapping_id: uuid.UUID) -> HttpResponse:
    mapping = get_object_or_404(GroupRoleMapping, pk=mapping_id)
    if request.method == "POST":
        services.delete_group_mapping(actor=request.principal, mapping=mapping)
        messages.success(request, f"Mapping of {mapping.group} removed.")
        return redirect("console:sso-groups", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": f"Remove the mapping of {mapping.group}?",
        "body": "Members of this group get the default role at their next sign-in.",
        "confirm_label": "Remove", "danger": True, "cancel_url": "console:sso-groups",
    })


class OidcForm(forms.Form):
    issuer = forms.CharField(required=False, max_length=1000, label="Issuer URL",
                             help_text="e.g. https://acme.okta.com — https only.")
    client_id = forms.CharField(required=False, max_length=500, label="Client id")
    # Write-only: never rendered back into the page.
    client_secret = forms.CharField(
        required=False, max_length=1000, label="Client secret",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Kept sealed in the vault; leave blank to keep the stored one.")
    discover = forms.BooleanField(
        required=False, label="Read endpoints from the issuer's discovery document now",
        help_text="Fetches <issuer>/.well-known/openid-configuration once, on save.")
    authorization_endpoint = forms.CharField(required=False, max_length=2000)
    token_endpoint = forms.CharField(required=False, max_length=2000)
    jwks_uri = forms.CharField(required=False, max_length=2000, label="JWKS URI")
    scopes = forms.CharField(required=False, max_length=500, initial="openid email profile")
    groups_claim = forms.CharField(required=False, max_length=200, initial="groups",
                                   help_text="The ID token claim that lists the groups.")
    default_role = forms.ChoiceField(
        required=False, choices=_default_roles, initial="viewer",
        help_text="Role for people none of whose groups is mapped.")
    enabled = forms.BooleanField(required=False, initial=True)
    enforce_sso = forms.BooleanField(
        required=False, label="Enforce SSO",
        help_text="Members cannot sign in with a password; owners keep an audited "
                  "break-glass sign-in.")


_OIDC_INITIAL = ("issuer", "client_id", "authorization_endpoint", "token_endpoint",
                 "jwks_uri", "scopes", "groups_claim", "default_role", "enabled",
                 "enforce_sso")


@never_cache
@org_view("org.manage")
def oidc_setup(request: OrgRequest) -> HttpResponse:
    from station.identity.models import OidcConnection
    from station.identity.oidc_views import redirect_uri

    connection = OidcConnection.objects.first()
    initial = ({name: getattr(connection, name) for name in _OIDC_INITIAL}
               if connection else None)
    form = OidcForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.configure_oidc(actor=request.principal, org=request.org,
                                    **form.cleaned_data)
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, "OpenID Connect settings saved.")
            return redirect("console:sso-oidc", org_slug=request.org.slug)
    return render(request, "console/sso/oidc.html", {
        "form": form, "connection": connection, "redirect_uri": redirect_uri(request.org.slug),
    })


@org_view("org.manage")
def oidc_remove(request: OrgRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            services.remove_oidc(actor=request.principal, org=request.org)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, "The OpenID Connect provider was removed.")
        return redirect("console:sso-oidc", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": "Remove the OpenID Connect provider?",
        "body": "Nobody can sign in through it any more; its SSO enforcement stops with it.",
        "confirm_label": "Remove", "danger": True, "cancel_url": "console:sso-oidc",
    })


# --- test connection (SAML and OIDC) ------------------------------------------------------


@org_view("org.manage")
def sso_test_start(request: OrgRequest) -> HttpResponse:
    """POST: this browser signs in at the SAML IdP as a test; nobody is signed in here."""
    return _start_test(request, "saml", "console:sso")


@org_view("org.manage")
def oidc_test_start(request: OrgRequest) -> HttpResponse:
    return _start_test(request, "oidc", "console:sso-oidc")


def _start_test(request: OrgRequest, protocol: str, back: str) -> HttpResponse:
    if request.method != "POST":  # a button (CSRF-protected), never a link
        return redirect(back, org_slug=request.org.slug)
    try:
        return sso_test.start(request, actor=request.principal, org=request.org,
                              protocol=protocol)
    except StationError as exc:
        messages.error(request, exc.detail)
        return redirect(back, org_slug=request.org.slug)


@never_cache
@org_view("org.manage")
def sso_test_result(request: OrgRequest, test_id: uuid.UUID) -> HttpResponse:
    """A test's result, only in the session that ran it and only for its tester."""
    result = sso_test.result_for(request.session, test_id=str(test_id), org=request.org,
                                 user=request.user)
    if result is None:
        raise Http404("No such connection test in this session.")
    return render(request, "console/sso/test_result.html", {
        "result": result, "received": result.get("received") or {},
        "plan": result.get("plan") or {}, "saml": result["protocol"] == "saml"})
