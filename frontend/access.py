"""`org_view(permission)`: the one door into every org page of the console.

It requires a login, resolves `/o/<org_slug>/` among the user's own memberships only (a
foreign and a nonexistent org give the same 404), activates the org context for the rest of
the request (the database guard then scopes every query by RLS), builds the principal, and
checks the permission with the same `has_permission` the API and services use.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec, cast

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from frontend.nav import NavLink, nav_for
from station.accounts import policy as mfa_policy
from tenants import context, platform
from tenants.authz import Narrowing, Principal, has_permission, narrowing_refusal
from tenants.models import Environment, Organization, User
from tenants.permissions import PERMISSIONS, check_permission_name

P = ParamSpec("P")


class OrgRequest(HttpRequest):
    """What an org view receives: the request plus what `org_view` resolved."""

    org: Organization
    principal: Principal
    role: str | None
    user_orgs: list[platform.OrgSummary]
    console_nav: list[NavLink]
    htmx: HtmxDetails


OrgViewFunc = Callable[Concatenate[OrgRequest, P], HttpResponse]


def org_view(permission: str) -> Callable[[OrgViewFunc[P]], Callable[..., HttpResponse]]:
    check_permission_name(permission)

    def decorator(view: OrgViewFunc[P]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, org_slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            user = cast(User, request.user)
            orgs = platform.orgs_for_user(user.pk)
            summary = next((o for o in orgs if o.slug == org_slug), None)
            if summary is None:
                raise Http404("No such organization.")
            token = context.activate(summary.id)
            try:
                org_request = cast(OrgRequest, request)
                org_request.org = Organization.objects.get(pk=summary.id)
                # An org that requires MFA sends members without it to enrol, before all else.
                enrol = mfa_policy.enrolment_redirect(request, org_request.org)
                if enrol is not None:
                    return enrol
                org_request.principal = Principal.for_user(user)
                org_request.role = summary.role
                org_request.user_orgs = orgs
                url_name = request.resolver_match.url_name if request.resolver_match else None
                org_request.console_nav = nav_for(org_request.principal, org_request.org, url_name)
                if not has_permission(org_request.principal, permission, org_request.org):
                    return render(
                        request,
                        "console/403.html",
                        {"permission": permission, "description": PERMISSIONS[permission]},
                        status=403,
                    )
                return view(org_request, *args, **kwargs)
            finally:
                context.deactivate(token)

        protected = login_required(wrapped)
        protected.required_permission = permission  # type: ignore[attr-defined]
        return protected

    return decorator


# --- environment-scoped pages (secrets, variables, MCP servers) ----------------------------


def refused_in_environment(
    request: OrgRequest, permission: str, environment: Environment
) -> HttpResponse | None:
    """The 403 page when the principal lacks `permission` in `environment` (e.g. a member
    narrowed there), judged exactly as the service will judge it; None when allowed."""
    if has_permission(request.principal, permission, request.org, environment):
        return None
    return render(request, "console/403.html", {
        "permission": permission,
        "description": f"{PERMISSIONS[permission]} (in {environment.name})",
        # Set when the member's org role has the permission but a narrowing here does not,
        # so the page can say "narrowed to viewer in Production" rather than "your role".
        "narrowing": narrowing_refusal(request.principal, permission, request.org, environment),
    }, status=403)


def refused_in_every_environment(request: OrgRequest, *permissions: str) -> HttpResponse:
    """The 403 page of a page that works in one environment chosen among those allowing all
    of `permissions` (new MCP server, provider, agent, trigger; start a run), when none does.
    A permission the org role lacks is named as the reason; otherwise narrowings are why,
    and the page lists each environment with its narrowed role and what that role lacks."""
    missing = next((p for p in permissions
                    if not has_permission(request.principal, p, request.org)), None)
    rows: list[tuple[Narrowing, str]] = []
    if missing is None:
        for env in Environment.objects.order_by("created_at"):
            for permission in permissions:
                if (found := narrowing_refusal(request.principal, permission, request.org,
                                               env)) is not None:
                    rows.append((found, permission))
                    break
    permission = missing or " + ".join(permissions)
    return render(request, "console/403.html", {
        "permission": permission,
        "description": "; ".join(PERMISSIONS[p] for p in ([missing] if missing else permissions)),
        "narrowings": rows}, status=403)


def selected_environment(
    request: OrgRequest, environments: list[Environment]
) -> Environment | None:
    """The environment tab asked for with `?env=`, else dev, else the first one."""
    wanted = request.GET.get("env")
    current = next((e for e in environments if e.slug == wanted), None)
    if current is None and environments:
        current = next((e for e in environments if e.slug == "dev"), environments[0])
    return current
