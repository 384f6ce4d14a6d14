from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from frontend.access import OrgRequest, org_view
from tenants import platform
from tenants.models import User


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The first org the user belongs to, or a page saying there is none yet."""
    orgs = platform.orgs_for_user(cast(User, request.user).pk)
    if orgs:
        return redirect("console:org-home", org_slug=orgs[0].slug)
    return render(request, "console/no_orgs.html")


@org_view("org.read")
def org_home(request: OrgRequest) -> HttpResponse:
    if request.console_nav:
        return redirect(request.console_nav[0].url)
    return render(request, "console/org_home.html")
