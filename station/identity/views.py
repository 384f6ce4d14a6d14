"""Sign-in pages of the identity app: SSO by email, and the owners' break-glass login."""

from __future__ import annotations

from allauth.account.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache

from station.identity.acs import safe_path
from station.identity.forms import BreakGlassLoginForm, SsoEmailForm


@never_cache
def sso_by_email(request: HttpRequest) -> HttpResponse:
    """Ask for the email; send its verified domain's org to that org's IdP."""
    form = SsoEmailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        url = str(form.login_path)
        next_url = safe_path(request.POST.get("next"))
        return HttpResponseRedirect(f"{url}?{urlencode({'next': next_url})}" if next_url else url)
    return render(request, "identity/sso_email.html",
                  {"form": form, "next": safe_path(request.GET.get("next")) or ""})


class BreakGlassLoginView(LoginView):
    form_class = BreakGlassLoginForm
    template_name = "identity/break_glass.html"

    def get_form_class(self) -> type[BreakGlassLoginForm]:
        return BreakGlassLoginForm


break_glass_login = BreakGlassLoginView.as_view()
