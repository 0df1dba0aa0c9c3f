"""Error codes of the API contract and the exception that carries them."""

from __future__ import annotations

from typing import Any

STATUS_OF_CODE: dict[str, int] = {
    "VALIDATION_ERROR": 422,
    "BAD_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RATE_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "INTEGRATION_ERROR": 502,
    "SERVICE_UNAVAILABLE": 503,
}

DEFAULT_MESSAGES: dict[str, str] = {
    "VALIDATION_ERROR": "Validation failed",
    "BAD_REQUEST": "Bad request",
    "UNAUTHORIZED": "Authentication required",
    "FORBIDDEN": "You are not allowed to do this",
    "NOT_FOUND": "Not found",
    "METHOD_NOT_ALLOWED": "Method not allowed",
    "CONFLICT": "Conflict",
    "PAYLOAD_TOO_LARGE": "Payload too large",
    "UNSUPPORTED_MEDIA_TYPE": "Unsupported media type",
    "RATE_LIMIT_EXCEEDED": "Too many requests",
    "INTERNAL_ERROR": "Internal server error",
    "INTEGRATION_ERROR": "An external service failed",
    "SERVICE_UNAVAILABLE": "Service unavailable",
}


class ApiError(Exception):
    """An error answered in the envelope with its code's HTTP status."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if code not in STATUS_OF_CODE:
            raise ValueError(f"unknown error code {code}")
        self.code = code
        self.message = message or DEFAULT_MESSAGES[code]
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return STATUS_OF_CODE[self.code]


def not_found(what: str = "Resource") -> ApiError:
    return ApiError("NOT_FOUND", f"{what} not found")


def conflict(message: str, details: Any = None) -> ApiError:
    return ApiError("CONFLICT", message, details)


def forbidden(message: str | None = None) -> ApiError:
    return ApiError("FORBIDDEN", message)


def unauthorized(message: str | None = None) -> ApiError:
    return ApiError("UNAUTHORIZED", message)


def validation_error(path: str, message: str) -> ApiError:
    """A single-field validation failure in the contract's `details` shape."""
    return ApiError("VALIDATION_ERROR", "Validation failed", [{"path": path, "message": message}])
