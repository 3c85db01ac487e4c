"""Logins with a TLS client certificate: verified by Signet itself (anchors, validity, usage,
revocation), mapped to a user by the configured rule, throttled and audited like password
logins; the audit of a certificate header that came from no trusted proxy; and the
certificates registered to users (`signet users cert-*`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from sqlalchemy.orm import Session

from signet.auth import assurance, certificate_users
from signet.auth.certificate_users import mapped_user
from signet.auth.client_certificates import CertificateRefused, Verified, fingerprint
from signet.auth.throttle import ThrottleKeys, prune_due, prune_stale, settle_login
from signet.auth.tokens import Principal
from signet.errors import SignetError
from signet.events import append_event
from signet.signing.context import Services
from signet.signing.sessions import Login, issue_tokens, page_login, reserve_try
from signet.store import User

T = TypeVar("T")

# What a certificate login reaches on its own (docs/assurance.md).
SOFTWARE_CERTIFICATE_LOGIN = assurance.reached(("x509",))
CARD_CERTIFICATE_LOGIN = assurance.reached(("x509_card",))


@dataclass(frozen=True)
class Presented:
    """A client certificate as it reached Signet, and through what: `tls` (gunicorn's own
    handshake) or `proxy` (a header from a trusted reverse proxy)."""

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    via: str


def certificate_login(
    services: Services, presented: Presented, source: str, *, remember_me: bool = False
) -> Login:
    """Log in the user `presented` maps to: an access token (and with `remember_me` a refresh
    token). Every refusal is HTTP 401 naming the problem, recorded as login.failed (method
    x509) and counted by the login throttle: per address, and per certificate as a user name
    would be."""

    def tokens(session: Session, user: User, level: assurance.Level) -> Login:
        return issue_tokens(services, session, user, level, source, remember_me, method="x509")

    return _logged_in(services, presented, source, tokens)


def certificate_principal(services: Services, presented: Presented, source: str) -> Principal:
    """The same login on Signet's own pages (OAuth 2.0): checked, throttled and refused as
    above, audited as `oauth2.login` (method x509); the principal, no token (the token
    endpoint mints it once the client has the code)."""

    def principal(session: Session, user: User, level: assurance.Level) -> Principal:
        return page_login(session, user, level, "x509", source)

    return _logged_in(services, presented, source, principal)


def _logged_in(
    services: Services,
    presented: Presented,
    source: str,
    succeed: Callable[[Session, User, assurance.Level], T],
) -> T:
    """Verify `presented`, map it to a user and `succeed` in the transaction that settles
    the throttle; or refuse (401), audited."""
    settings = services.settings.client_certificates
    digest = fingerprint(presented.certificate)
    subject = presented.certificate.subject.rfc4514_string()[:256]
    if not settings.enabled:
        raise SignetError(
            "Client certificate logins are not enabled on this service; "
            "use HTTP Basic authentication",
            error="invalid_request",
            status=401,
        )
    keys, limits = ThrottleKeys.of(f"x509:{digest}", source), services.settings.login
    reserve_try(services, keys, subject, source)
    verified: Verified | None = None
    refusal: str | None = None
    try:  # outside any transaction: it may fetch a CRL or ask an OCSP responder
        verified = services.client_certificates.verify(presented.certificate, presented.chain)
    except CertificateRefused as exc:
        refusal = exc.reason
    result: T | None = None
    with services.database.transaction() as session:
        username = subject
        if verified is not None:
            try:
                user = mapped_user(session, verified.certificate, settings.mapping)
            except CertificateRefused as exc:
                refusal = exc.reason
            else:
                username = user.username
                level = CARD_CERTIFICATE_LOGIN if verified.on_card else SOFTWARE_CERTIFICATE_LOGIN
                result = succeed(session, user, level)
                if verified.revocation == "unknown":
                    append_event(
                        session,
                        "login.revocation_unknown",
                        actor=username,
                        subject=username,
                        outcome="success",
                        reason="no revocation source answered; soft_fail let the login through",
                        fingerprint=digest,
                        source=source,
                    )
        if result is None:
            append_event(
                session,
                "login.failed",
                actor=subject[:128],
                subject=subject,
                outcome="failure",
                method="x509",
                via=presented.via,
                reason=refusal,
                fingerprint=digest,
                source=source,
            )
        settle_login(session, keys, limits, ok=result is not None, username=username, source=source)
    if prune_due():
        with services.database.transaction() as session:
            prune_stale(session, limits)
    if result is None:
        raise SignetError(
            f"Client certificate refused: {refusal}", error="authentication_error", status=401
        )
    return result


def record_ignored_header(services: Services, *, peer: str, source: str, header: str) -> None:
    """A client certificate header from an address that is no trusted proxy: ignored (it could
    name anyone's certificate), and recorded."""
    with services.database.transaction() as session:
        append_event(
            session,
            "login.certificate_header_ignored",
            actor="-",
            subject=header,
            outcome="failure",
            peer=peer,
            source=source,
            reason="the header did not come from a proxy in web.trusted_proxies",
        )


def add_certificate(
    services: Services, username: str, pem: bytes, label: str, *, actor: str
) -> str:
    """Register a certificate to a user (the `fingerprint` mapping); its SHA-256, audited."""
    with services.database.transaction() as session:
        return certificate_users.register(session, username, pem, label, actor=actor)


def list_certificates(
    services: Services, username: str | None = None
) -> list[certificate_users.RegisteredCertificate]:
    with services.database.transaction() as session:
        return certificate_users.registered(session, username)


def remove_certificate(services: Services, username: str, digest: str, *, actor: str) -> None:
    with services.database.transaction() as session:
        certificate_users.unregister(session, username, digest, actor=actor)
