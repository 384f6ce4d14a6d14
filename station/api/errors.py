"""RFC 9457 problem details for every API error, with field-level details."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from station.core.errors import StationError
from station.core.request_context import current_request
from tenants.context import NoOrgContext

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_body(
    *, status: int, code: str, title: str, detail: str, instance: str,
    errors: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:station:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        # Always present, so clients read one shape whatever the status.
        "errors": [
            {"field": field, "message": message}
            for field, messages in (errors or {}).items()
            for message in messages
        ],
    }
    ctx = current_request.get()
    if ctx is not None:
        body["request_id"] = ctx.request_id
    return body


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail → {"field.sub": ["message", …]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix or "body"
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "body"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                for k, v in _flatten(item, f"{prefix}[{index}]").items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "body"] = [str(detail)]
    return out


def _classify(exc: Exception) -> tuple[int, str, str, str, dict[str, list[str]]] | None:
    if isinstance(exc, StationError):
        return exc.status, exc.code, exc.title, exc.detail, exc.errors
    if isinstance(exc, Http404 | drf.NotFound | NoOrgContext):
        return 404, "not_found", "Not found", "No such resource in this organization.", {}
    if isinstance(exc, drf.ValidationError):
        errors = _flatten(exc.detail)
        summary = "; ".join(f"{field}: {msgs[0]}" for field, msgs in errors.items())
        return 422, "invalid_input", "Invalid input", summary or "Invalid input.", errors
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return 401, "unauthenticated", "Authentication required", str(exc.detail), {}
    if isinstance(exc, drf.PermissionDenied | DjangoPermissionDenied):
        detail = getattr(exc, "detail", None) or "You do not have permission for this."
        return 403, "permission_denied", "Permission denied", str(detail), {}
    if isinstance(exc, drf.Throttled):
        return 429, "rate_limited", "Too many requests", str(exc.detail), {}
    if isinstance(exc, drf.MethodNotAllowed):
        return 405, "method_not_allowed", "Method not allowed", str(exc.detail), {}
    if isinstance(exc, drf.UnsupportedMediaType | drf.NotAcceptable):
        return exc.status_code, "unsupported", "Unsupported media type", str(exc.detail), {}
    if isinstance(exc, drf.ParseError):
        return 400, "malformed_request", "Malformed request", str(exc.detail), {}
    if isinstance(exc, drf.APIException):
        return exc.status_code, "error", "Error", str(exc.detail), {}
    return None


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    classified = _classify(exc)
    if classified is None:
        return None  # unexpected: let Django log it and answer 500 (handler500)
    status, code, title, detail, errors = classified
    request = context.get("request")
    set_rollback()  # nothing half-written: the request transaction is rolled back
    response = Response(
        problem_body(status=status, code=code, title=title, detail=detail,
                     instance=request.path if request else "", errors=errors),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="station"'
    wait = getattr(exc, "wait", None)
    if status == 429 and wait is not None:
        response["Retry-After"] = str(int(wait) + 1)
    return response


def _json_problem(
    request: HttpRequest, status: int, code: str, title: str, detail: str
) -> JsonResponse:
    return JsonResponse(
        problem_body(status=status, code=code, title=title, detail=detail, instance=request.path),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_problem(request, 404, "not_found", "Not found", "No such resource.")


def api_server_error(request: HttpRequest) -> JsonResponse:
    return _json_problem(request, 500, "server_error", "Server error",
                         "The server failed to handle this request; quote the request id.")
