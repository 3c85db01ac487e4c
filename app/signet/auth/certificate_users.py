"""Who a verified client certificate logs in (the mapping rule of [client_certificates]), and
the certificates registered to users for the `fingerprint` rule (`signet users cert-*`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from signet.auth.client_certificates import CertificateRefused, fingerprint, parse_certificate
from signet.auth.tokens import now
from signet.errors import InvalidRequest, NotFound
from signet.events import append_event
from signet.store import ClientCertificate, User


def _user_named(session: Session, username: str) -> User | None:
    return session.execute(select(User).where(User.username == username)).scalar_one_or_none()


def _emails(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME
        ).value
    except x509.ExtensionNotFound:
        return []
    assert isinstance(names, x509.SubjectAlternativeName)
    return names.get_values_for_type(x509.RFC822Name)


def mapped_user(session: Session, certificate: x509.Certificate, rule: str) -> User:
    """The active user `certificate` names under `rule`; CertificateRefused saying why none."""
    user: User | None = None
    if rule == "subject_cn":
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(names) != 1:
            raise CertificateRefused("the certificate's subject has no single common name")
        user = _user_named(session, str(names[0].value))
    elif rule == "subject_dn":
        user = _user_named(session, certificate.subject.rfc4514_string())
    elif rule == "san_email":
        emails = {e.lower() for e in _emails(certificate)}
        if not emails:
            raise CertificateRefused("the certificate names no e-mail address (SAN rfc822Name)")
        users = (
            session.execute(select(User).where(func.lower(User.email).in_(emails))).scalars().all()
        )
        if len(users) > 1:
            raise CertificateRefused("the certificate's e-mail address belongs to several users")
        user = users[0] if users else None
    else:
        user = session.execute(
            select(User)
            .join(ClientCertificate, ClientCertificate.user_id == User.id)
            .where(ClientCertificate.fingerprint == fingerprint(certificate))
        ).scalar_one_or_none()
    if user is None:
        raise CertificateRefused(f"the certificate maps to no user (mapping {rule})")
    if user.status != "active":
        raise CertificateRefused(f"the certificate's user {user.username} is disabled")
    return user


@dataclass(frozen=True)
class RegisteredCertificate:
    username: str
    fingerprint: str
    label: str
    subject: str
    created_at: datetime


def register(session: Session, username: str, pem: bytes, label: str, *, actor: str) -> str:
    """Register a certificate (PEM or DER) to a user for the fingerprint rule; its SHA-256."""
    user = _user_named(session, username)
    if user is None:
        raise NotFound(f"Unknown user {username}")
    try:
        certificate = parse_certificate(pem)
    except CertificateRefused as exc:
        raise InvalidRequest(f"Cannot register the certificate: {exc.reason}") from exc
    digest = fingerprint(certificate)
    taken = session.execute(
        select(ClientCertificate.id).where(ClientCertificate.fingerprint == digest)
    ).first()
    if taken is not None:
        raise InvalidRequest(f"The certificate {digest} is registered already")
    subject = certificate.subject.rfc4514_string()[:512]
    session.add(
        ClientCertificate(
            user_id=user.id,
            fingerprint=digest,
            label=label[:128],
            subject=subject,
            created_at=now(),
        )
    )
    append_event(
        session,
        "user.certificate_added",
        actor=actor,
        subject=username,
        fingerprint=digest,
        label=label[:128],
        certificate_subject=subject,
    )
    return digest


def registered(session: Session, username: str | None = None) -> list[RegisteredCertificate]:
    query = select(ClientCertificate, User.username).join(
        User, User.id == ClientCertificate.user_id
    )
    if username is not None:
        query = query.where(User.username == username)
    return [
        RegisteredCertificate(name, row.fingerprint, row.label, row.subject, row.created_at)
        for row, name in session.execute(query.order_by(User.username, ClientCertificate.id))
    ]


def unregister(session: Session, username: str, digest: str, *, actor: str) -> None:
    user = _user_named(session, username)
    if user is None:
        raise NotFound(f"Unknown user {username}")
    gone = session.execute(
        delete(ClientCertificate).where(
            ClientCertificate.user_id == user.id,
            ClientCertificate.fingerprint == digest.lower().replace(":", ""),
        )
    ).rowcount  # type: ignore[attr-defined]
    if not gone:
        raise NotFound(f"User {username} has no certificate {digest}")
    append_event(
        session, "user.certificate_removed", actor=actor, subject=username, fingerprint=digest
    )
