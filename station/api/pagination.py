from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request


class StationCursorPagination(CursorPagination):
    """Stable cursor pages, newest first; `page_size` up to API_MAX_PAGE_SIZE."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE
    ordering: Any = ("-created_at", "-id")

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        # A cursor is client input: a well-formed one can still carry a position that is no
        # valid value for the ordering field (a date that is not a date). That is a bad
        # cursor, answered like DRF answers an undecodable one, not a server error.
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValidationError, ValueError, OverflowError) as exc:
            raise NotFound(self.invalid_cursor_message) from exc
