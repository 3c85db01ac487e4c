"""The client certificate of a request: from gunicorn's own TLS handshake (the connection's
socket), or from the header a trusted reverse proxy sets (nginx: $ssl_client_escaped_cert);
the header from anyone else is ignored and audited. What either says is verified later."""

from __future__ import annotations

import ssl
from urllib.parse import unquote

from flask import request

from signet.auth.client_certificates import CertificateRefused, parse_certificate
from signet.errors import InvalidRequest, SignetError
from signet.signing.certificate_login import Presented, record_ignored_header
from signet.web.client_address import PEER, allowed
from signet.web.params import services

MAX_HEADER = 32 * 1024


def _from_tls() -> Presented | None:
    sock = request.environ.get("gunicorn.socket")
    if not isinstance(sock, ssl.SSLSocket):
        return None
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return Presented(parse_certificate(der), [], via="tls")
    except CertificateRefused as exc:  # OpenSSL took it, cryptography cannot read it
        raise SignetError(
            f"Client certificate refused: {exc.reason}", error="authentication_error", status=401
        ) from exc


def presented_certificate() -> Presented | None:
    """The request's client certificate, or None when it has none Signet may read."""
    direct = _from_tls()
    if direct is not None:
        return direct
    settings = services().settings
    header = settings.client_certificates.proxy_header
    value = request.headers.get(header)
    if not value:
        return None
    peer = request.environ.get(PEER, request.remote_addr or "")
    if not allowed(peer, settings.web.trusted_proxies):
        record_ignored_header(
            services(), peer=peer, source=request.remote_addr or "", header=header
        )
        return None
    if len(value) > MAX_HEADER:
        raise InvalidRequest(f"The {header} header is longer than {MAX_HEADER} bytes")
    try:
        certificate = parse_certificate(unquote(value).encode("ascii", "replace"))
    except CertificateRefused as exc:
        raise InvalidRequest(f"The {header} header holds no certificate: {exc.reason}") from exc
    return Presented(certificate, [], via="proxy")
