"""Per-request facts (request id, client address, user agent) for logs and audit events."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    ip: str | None = None
    user_agent: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"request_id": self.request_id, "ip": self.ip, "user_agent": self.user_agent}


current_request: ContextVar[RequestContext | None] = ContextVar("station_request", default=None)
