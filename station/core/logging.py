import logging

from station.core.request_context import current_request


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = current_request.get()
        record.request_id = ctx.request_id if ctx else None
        return True
