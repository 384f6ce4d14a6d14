"""The account area (per person, not per org): active sessions. MFA pages are allauth's
(/accounts/2fa/) in the console's look."""

from __future__ import annotations

import uuid
from typing import cast

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from station.accounts import services, sessions
from station.core.errors import StationError
from tenants.models import User


@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)
    return render(request, "console/account/sessions.html", {
        "sessions": sessions.active_sessions(user.pk),
        "current_key": request.session.session_key,
    })


@login_required
@require_POST
def session_revoke(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    user = cast(User, request.user)
    if any(s.pk == session_id and s.session_key == request.session.session_key
           for s in sessions.active_sessions(user.pk)):
        # This browser: a normal sign-out (deleting the row under the live request would make
        # the session middleware fail to save it).
        logout(request)
        return redirect("account_login")
    try:
        services.revoke_own_session(user=user, session_id=session_id)
    except StationError as exc:
        messages.error(request, exc.detail)
        return redirect("console:account-sessions")
    messages.success(request, "That session was signed out. It stops working on its next "
                              "request.")
    return redirect("console:account-sessions")
