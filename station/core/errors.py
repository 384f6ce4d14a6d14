"""Domain errors raised by services; the API and console turn them into clear answers."""

from __future__ import annotations


class StationError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}


class NotFound(StationError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(StationError):
    status = 409
    code = "conflict"
    title = "Conflict"


class InvalidInput(StationError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"

    @classmethod
    def field(cls, name: str, message: str) -> InvalidInput:
        return cls(f"{name}: {message}", errors={name: [message]})


class AccessDenied(StationError):
    status = 403
    code = "permission_denied"
    title = "Permission denied"

    def __init__(self, permission: str, message: str | None = None) -> None:
        super().__init__(message or f"You need the '{permission}' permission for this.")
        self.permission = permission
