"""Liveness and readiness probes.

/readyz names each failing check but keeps error details out of the response (it is
unauthenticated); the details go to the log.
"""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from station.celery import app as celery_app
from station.core.dbrole import unsafe_role_reason

logger = logging.getLogger(__name__)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _failed(check: str, exc: Exception) -> str:
    logger.warning("readiness check %s failed: %s: %s", check, type(exc).__name__, exc)
    return f"unavailable ({type(exc).__name__})"


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        reason = unsafe_role_reason()
    except Exception as exc:  # any failure means not ready
        return _failed("database", exc)
    if reason:
        logger.error("unsafe database role: %s", reason)
        return "unsafe role: it can bypass row-level security"
    return None


def _check_broker() -> str | None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return _failed("broker", exc)
    return None


def _check_cache() -> str | None:
    # Sign-ins count their attempts in the shared cache: without it they fail.
    try:
        cache.set("station:readyz", "ok", timeout=10)
        if cache.get("station:readyz") != "ok":
            raise RuntimeError("a value written to the cache was not read back")
    except Exception as exc:
        return _failed("cache", exc)
    return None


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _check_database(),
        "broker": _check_broker(),
        "cache": _check_cache(),
    }
    ready = all(error is None for error in checks.values())
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {name: ("ok" if err is None else err) for name, err in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
