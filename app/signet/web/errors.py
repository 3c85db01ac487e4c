"""One error handler: every exception becomes CSC error JSON (the OAuth 2.0 login pages show
an HTML error page instead: `web.oauth2`); never a trace."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from flask import Flask, Response, jsonify, request
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from signet.errors import BackendError, SignetError, TooManyRequests

log = logging.getLogger("signet.web")

_HTTP_ERRORS = {
    400: "invalid_request",
    401: "invalid_token",
    403: "access_denied",
    404: "invalid_request",
    405: "invalid_request",
    406: "invalid_request",
    408: "invalid_request",
    411: "invalid_request",
    413: "invalid_request",
    414: "invalid_request",
    415: "invalid_request",
    417: "invalid_request",
    431: "invalid_request",
    429: "temporarily_unavailable",
    503: "temporarily_unavailable",
}


class RequestTimeout(TimeoutError):
    """The client sent its request too slowly (raised by the server's socket reader)."""


def csc_error_code(status: int) -> str:
    """The CSC ``error`` code for an HTTP status."""
    if status in _HTTP_ERRORS:
        return _HTTP_ERRORS[status]
    return "invalid_request" if 400 <= status < 500 else "server_error"


def error_response(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer error="{error}"'
    return response


def method_not_allowed(allowed: Iterable[str]) -> Response:
    """405 with the Allow header HTTP requires, and a description saying what to send."""
    methods = sorted(allowed)
    usable = [m for m in methods if m not in ("HEAD", "OPTIONS")] or methods
    why = " (every CSC method is called with POST)" if request.path.startswith("/csc/") else ""
    response = error_response(
        405,
        "invalid_request",
        f"The method {request.method} is not allowed for {request.path}; use "
        f"{' or '.join(usable)}{why}",
    )
    response.headers["Allow"] = ", ".join(methods)
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(SignetError)
    def _signet(exc: SignetError) -> Response:
        response = error_response(exc.status, exc.error, exc.description)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            return method_not_allowed(exc.valid_methods)
        status = exc.code or 500
        return error_response(status, csc_error_code(status), exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, RequestTimeout):
            return error_response(408, "invalid_request", str(exc))
        if isinstance(exc, ParseException | NoMoreData):
            # gunicorn reads a chunked body as the app reads it, and finds its faults then
            return error_response(
                400, "invalid_request", f"Malformed request body: {exc or type(exc).__name__}"
            )
        if isinstance(exc, BackendError):
            log.error("backend unavailable: %s", exc)
            return error_response(503, "temporarily_unavailable", str(exc))
        log.exception("unexpected error")
        return error_response(
            500, "server_error", "internal error; the event was logged on the server"
        )
