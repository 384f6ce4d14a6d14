"""The public inbound webhook endpoint: no API key, no session; the signature is the
authentication (station.triggers.inbound)."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from station.api.errors import PROBLEM_CONTENT_TYPE, problem_body
from station.core.errors import StationError
from station.triggers import inbound


def _problem(request: HttpRequest, status: int, code: str, title: str,
             detail: str, errors: dict[str, list[str]] | None = None) -> JsonResponse:
    transaction.set_rollback(True)  # nothing a rejected call did may stay behind
    return JsonResponse(problem_body(status=status, code=code, title=title, detail=detail,
                                     instance=request.path, errors=errors),
                        status=status, content_type=PROBLEM_CONTENT_TYPE)


@csrf_exempt
def receive_hook(request: HttpRequest, webhook_id: str) -> JsonResponse:
    if request.method != "POST":
        response = _problem(request, 405, "method_not_allowed", "Method not allowed",
                            "Send the event with POST.")
        response["Allow"] = "POST"
        return response
    try:
        body = request.body
    except RequestDataTooBig:
        return _problem(request, 413, "too_large", "Request too large",
                        "The body is larger than this server accepts.")
    try:
        accepted = inbound.receive(webhook_id=webhook_id, headers=request.headers, body=body)
    except StationError as exc:
        return _problem(request, exc.status, exc.code, exc.title, exc.detail, exc.errors)
    return JsonResponse({"run_id": str(accepted.run_id), "created": accepted.created},
                        status=202)
