from django.conf import settings
from rest_framework.pagination import CursorPagination


class StationCursorPagination(CursorPagination):
    """Stable cursor pages, newest first; `page_size` up to API_MAX_PAGE_SIZE."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE
    ordering = ("-created_at", "-id")
