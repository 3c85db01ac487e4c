"""Errors every layer may raise; web turns them into CSC error JSON, cli into one line."""

from __future__ import annotations


class SignetError(Exception):
    """A request Signet refuses, with the CSC error code and the HTTP status it maps to."""

    error = "invalid_request"
    status = 400

    def __init__(
        self, description: str, *, error: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(description)
        self.description = description
        if error is not None:
            self.error = error
        if status is not None:
            self.status = status


class InvalidRequest(SignetError):
    error, status = "invalid_request", 400


class NotFound(SignetError):
    error, status = "invalid_request", 404


class Conflict(SignetError):
    error, status = "invalid_request", 409


class NotAcceptable(SignetError):
    """The answer the client accepts (its Accept header) cannot be given for this request."""

    error, status = "invalid_request", 406


class PayloadTooLarge(SignetError):
    """The request body, or a document in it, is over a limit the service sets."""

    error, status = "invalid_request", 413


class MethodNotImplemented(SignetError):
    """A CSC method (or an option of one) this service does not offer; info lists those it
    does."""

    error, status = "invalid_request", 501


class BadGateway(SignetError):
    """A service Signet relies on for the request (the CA) answered with a failure."""

    error, status = "temporarily_unavailable", 502


class InvalidToken(SignetError):
    error, status = "invalid_token", 401


class AccessDenied(SignetError):
    error, status = "access_denied", 403


class TooManyRequests(SignetError):
    """Refused for now; `retry_after` says in how many seconds to try again."""

    error, status = "temporarily_unavailable", 429

    def __init__(self, description: str, *, retry_after: int) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class ServiceUnavailable(SignetError):
    error, status = "temporarily_unavailable", 503


class BackendError(Exception):
    """A backend (database, HSM) failed; the node answers 503 until it is back."""
