"""The approvals inbox: held tool calls waiting for a decision, across the environments the
member can see, oldest first, each with Approve / Reject where the member holds runs.approve.
Decisions post to `runs.approval_decide` (which calls `decide_approval`)."""

from __future__ import annotations

import json

from django.http import HttpResponse
from django.shortcuts import render

from frontend.access import OrgRequest, org_view
from frontend.views.runs import environments_with
from station.runs import selectors
from tenants.authz import Principal
from tenants.models import Organization


def pending_count(principal: Principal, org: Organization) -> int:
    """The nav badge: held calls this principal could decide (runs.approve there)."""
    from tenants.authz import has_permission
    from tenants.models import Environment

    environments = [env for env in Environment.objects.all()
                    if has_permission(principal, "runs.approve", org, env)]
    return selectors.count_pending_approvals(environments)


@org_view("runs.read")
def approval_list(request: OrgRequest) -> HttpResponse:
    visible = environments_with(request, "runs.read")
    deciders = {env.pk for env in environments_with(request, "runs.approve")}
    approvals = list(selectors.select_pending_approvals(visible)[:200])
    rows = [{"approval": a, "can_decide": a.environment_id in deciders,
             "arguments": json.dumps(a.arguments, indent=2, sort_keys=True,
                                     ensure_ascii=False)}
            for a in approvals]
    return render(request, "console/approvals/list.html", {
        "rows": rows, "can_decide_any": bool(deciders)})
