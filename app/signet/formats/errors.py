"""Exceptions raised by signet.formats: a format problem or a failing external service."""

from __future__ import annotations


class FormatError(Exception):
    """The document could not be signed in the requested format, level or packaging."""


class ServiceError(FormatError):
    """An external service (TSA, OCSP responder, CRL or certificate repository) failed.

    ``service`` is one of ``"tsa"``, ``"ocsp"``, ``"crl"``, ``"cert"``; ``url`` is the endpoint
    that failed, and it is always part of the message so an operator can act on it.
    """

    def __init__(self, service: str, url: str, detail: str) -> None:
        self.service = service
        self.url = url
        self.detail = detail
        super().__init__(f"{service.upper()} service {url} failed: {detail}")
