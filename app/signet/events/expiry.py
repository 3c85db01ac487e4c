"""Which certificates are near expiry: the CA's and the signers' (from the database) and the TSA
trust anchors (formats.trust_roots), as the event forwarder reports them and the SNMP agent
lists them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from signet.store import Certificate

# Certificates listed at most (soonest first): snmpd's table stays small to walk.
MAX_CERTIFICATES = 1000


@dataclass(frozen=True)
class CertificateNearExpiry:
    role: str  # ca | tsa | signer
    subject: str
    not_after: datetime
    serial: str | None = None  # hex; None for a trust anchor read from a file
    credential_id: str | None = None

    def days_left(self, now: datetime) -> int:
        return (self.not_after - now) // timedelta(days=1)


def certificates_near_expiry(
    session: Session, trust_roots: Sequence[str], warning_days: int
) -> list[CertificateNearExpiry]:
    """Unrevoked CA and signer certificates, and the TSA trust anchors in `trust_roots`, that
    expire within `warning_days` (or have expired), soonest first."""
    horizon = datetime.now(UTC) + timedelta(days=warning_days)
    found: list[CertificateNearExpiry] = []
    rows = session.execute(
        select(
            Certificate.role,
            Certificate.subject,
            Certificate.not_after,
            Certificate.serial,
            Certificate.credential_id,
        )
        .where(Certificate.role.in_(("ca", "end-entity")))
        .where(Certificate.revoked_at.is_(None))
        .where(Certificate.not_after <= horizon)
        .order_by(Certificate.not_after)
        .limit(MAX_CERTIFICATES)
    ).all()
    for role, subject, not_after, serial, credential_id in rows:
        not_after = not_after if not_after.tzinfo else not_after.replace(tzinfo=UTC)
        found.append(
            CertificateNearExpiry(
                "ca" if role == "ca" else "signer", subject, not_after, serial, credential_id
            )
        )
    for path in trust_roots:
        for certificate in _read_certificates(Path(path)):
            if certificate.not_valid_after_utc <= horizon:
                found.append(
                    CertificateNearExpiry(
                        "tsa",
                        certificate.subject.rfc4514_string(),
                        certificate.not_valid_after_utc,
                        format(certificate.serial_number, "x"),
                    )
                )
    found.sort(key=lambda c: c.not_after)
    return found[:MAX_CERTIFICATES]


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError:
        return []  # formats reports an unreadable trust root where it uses it
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        return []
