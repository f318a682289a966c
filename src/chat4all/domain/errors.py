"""Domain errors. Each carries a stable machine-readable code; edges map kinds to transport status."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, detail: str, *, code: str | None = None, field_errors: dict[str, list[str]] | None = None):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.field_errors = field_errors or {}


class InvalidInput(DomainError):
    code = "invalid_input"


class NotAuthenticated(DomainError):
    code = "not_authenticated"


class Forbidden(DomainError):
    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Gone(DomainError):
    code = "gone"


class RangeNotSatisfiable(DomainError):
    """A part of a file was asked for that starts past its end; `size` is the file's."""

    code = "range_not_satisfiable"

    def __init__(self, detail: str, *, size: int):
        super().__init__(detail)
        self.size = size


class TooLarge(DomainError):
    code = "too_large"


class Throttled(DomainError):
    code = "too_many_attempts"

    def __init__(self, detail: str, *, retry_after_seconds: int):
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class QuotaExceeded(DomainError):
    """A per-user quota is full. `quota` names it; `retry_after_seconds` is set when time alone frees it."""

    code = "quota_exceeded"

    def __init__(self, detail: str, *, quota: str, retry_after_seconds: int | None = None):
        super().__init__(detail)
        self.quota = quota
        self.retry_after_seconds = retry_after_seconds


class Unavailable(DomainError):
    """A dependency (database, storage) cannot be reached; the caller may retry."""

    code = "service_unavailable"

    def __init__(self, detail: str, *, retry_after_seconds: int = 2):
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class PermanentDeliveryFailure(DomainError):
    code = "delivery_failed"


class TransientDeliveryFailure(DomainError):
    code = "delivery_retry"
