"""A node's status as an NMS sees it: HSM and database probed, counts read from the database
(so every node of a cluster reports the same), certificates near expiry."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from cryptography import x509
from sqlalchemy import func, select

from signet.signing import Services
from signet.signing.health import check_health
from signet.store import AuditRecord, Certificate, Credential

# Audit events that are a refused credential authorization (a wrong or replayed code or PIN).
REFUSED_AUTHORIZATIONS = ("otp.failed", "otp.reused", "pin.failed")
_COUNTED = ("signature.created", "credential.locked", *REFUSED_AUTHORIZATIONS)
_BATCH = 5000
# Certificates listed at most (soonest first): snmpd's table stays small to walk.
MAX_CERTIFICATES = 1000


@dataclass(frozen=True)
class CertificateNearExpiry:
    role: str  # ca | tsa | signer
    subject: str
    not_after: datetime

    def days_left(self, now: datetime) -> int:
        return (self.not_after - now) // timedelta(days=1)


@dataclass
class TrailCounts:
    """Counts over the audit trail, advanced from a cursor (the trail only grows), so a probe
    reads only the records appended since the last one."""

    seq: int = 0
    # signatures by the operation that made them: signHash (one per hash), signDoc (one per
    # document)
    by_operation: dict[str, int] = field(default_factory=dict)
    authorizations_refused: int = 0
    primed: bool = False

    @property
    def signatures_made(self) -> int:
        return sum(self.by_operation.values())

    def advance(self, services: Services) -> list[str]:
        """Read the records appended since the last call; return the credentials locked in
        them (in order). The first call catches up with the whole trail and returns none: a
        restarted agent does not announce old locks again."""
        locked: list[str] = []
        with services.database.transaction(read_only=True) as session:
            head = session.execute(select(func.max(AuditRecord.seq))).scalar() or 0
            while self.seq < head:
                upto = min(head, self.seq + _BATCH)
                rows = session.execute(
                    select(AuditRecord.event, AuditRecord.subject, AuditRecord.details)
                    .where(AuditRecord.seq > self.seq, AuditRecord.seq <= upto)
                    .where(AuditRecord.event.in_(_COUNTED))
                    .order_by(AuditRecord.seq)
                ).all()
                for event, subject, details in rows:
                    if event == "signature.created":
                        # signHash records every hash it signed; signDoc one document each
                        hashes = json.loads(details).get("hashes")
                        if isinstance(hashes, list):
                            self._add("signHash", len(hashes))
                        else:
                            self._add("signDoc", 1)
                    elif event == "credential.locked":
                        locked.append(subject or "")
                    else:
                        self.authorizations_refused += 1
                self.seq = upto
        if not self.primed:
            self.primed = True
            return []
        return locked

    def _add(self, operation: str, count: int) -> None:
        self.by_operation[operation] = self.by_operation.get(operation, 0) + count


@dataclass
class Snapshot:
    """One probe's values; the agent serves the latest and reports its age."""

    taken_at: float  # time.monotonic()
    software_version: str
    node_name: str
    database_engine: str
    token_label: str
    hsm_up: bool
    hsm_reason: str
    database_up: bool
    database_reason: str
    signatures_made: int = 0
    authorizations_refused: int = 0
    credentials_locked: int = 0
    certificates: list[CertificateNearExpiry] = field(default_factory=list)
    # credentials locked since the previous probe (notified once)
    newly_locked: list[str] = field(default_factory=list)

    @property
    def service_up(self) -> bool:
        return self.hsm_up and self.database_up


def software_version() -> str:
    try:
        return version("signet")
    except PackageNotFoundError:
        return "unknown"


def probe(services: Services, counts: TrailCounts, *, warning_days: int) -> Snapshot:
    """Probe the HSM and the database (signing.health: a real, bounded PKCS#11 round trip)
    and, if the database answers, read the counts and the certificates near expiry."""
    health = check_health(services)["checks"]
    hsm, database = health["hsm"], health["database"]
    settings = services.settings
    snapshot = Snapshot(
        taken_at=time.monotonic(),
        software_version=software_version(),
        node_name=f"{settings.web.name} on {socket.gethostname()}",
        database_engine=services.database.engine.dialect.name,
        token_label=settings.hsm.token_label,
        hsm_up=hsm["status"] == "ok",
        hsm_reason=str(hsm.get("reason", "")),
        database_up=database["status"] == "ok",
        database_reason=str(database.get("reason", "")),
    )
    if snapshot.database_up:
        snapshot.newly_locked = counts.advance(services)
        snapshot.signatures_made = counts.signatures_made
        snapshot.authorizations_refused = counts.authorizations_refused
        snapshot.credentials_locked = credentials_locked(services)
        snapshot.certificates = certificates_near_expiry(services, warning_days)
    return snapshot


def credentials_locked(services: Services) -> int:
    """Credentials locked now (after too many failed authorizations)."""
    with services.database.transaction(read_only=True) as session:
        query = select(func.count()).select_from(Credential).where(Credential.locked.is_(True))
        return int(session.execute(query).scalar_one())


def certificates_near_expiry(services: Services, warning_days: int) -> list[CertificateNearExpiry]:
    """CA and signer certificates from the database, and the TSA trust anchors named in
    formats.trust_roots, that expire within `warning_days` (or have expired), soonest first."""
    horizon = datetime.now(UTC) + timedelta(days=warning_days)
    found: list[CertificateNearExpiry] = []
    with services.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(Certificate.role, Certificate.subject, Certificate.not_after)
            .where(Certificate.role.in_(("ca", "end-entity")))
            .where(Certificate.revoked_at.is_(None))
            .where(Certificate.not_after <= horizon)
            .order_by(Certificate.not_after)
            .limit(MAX_CERTIFICATES)
        ).all()
    for role, subject, not_after in rows:
        not_after = not_after if not_after.tzinfo else not_after.replace(tzinfo=UTC)
        found.append(CertificateNearExpiry("ca" if role == "ca" else "signer", subject, not_after))
    for path in services.settings.formats.trust_roots:
        for certificate in _read_certificates(Path(path)):
            if certificate.not_valid_after_utc <= horizon:
                found.append(
                    CertificateNearExpiry(
                        "tsa", certificate.subject.rfc4514_string(), certificate.not_valid_after_utc
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
