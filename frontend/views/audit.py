from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from audit.selectors import filter_events
from frontend.access import OrgRequest, org_view
from frontend.forms import AuditFilterForm

PAGE_SIZE = 50


@org_view("audit.read")
def audit_log(request: OrgRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    events = filter_events(
        actor=filters.get("actor") or None,
        action=filters.get("action") or None,
        since=filters.get("since"),
        until=filters.get("until"),
    )
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "console/audit/list.html", {
        "form": form,
        "page": page,
        "filtered": bool(filters and any(filters.values())),
        "query": query.urlencode(),
    })
