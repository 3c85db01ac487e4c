"""A node's status as an NMS sees it: HSM and database probed, counts read from the database
(so every node of a cluster reports the same), certificates near expiry."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy import func, select

from signet.events.expiry import CertificateNearExpiry, certificates_near_expiry
from signet.signing import Services
from signet.signing.health import check_health
from signet.store import AuditRecord, Credential

# Audit events that are a refused credential authorization (a wrong or replayed code or PIN).
REFUSED_AUTHORIZATIONS = ("otp.failed", "otp.reused", "pin.failed")
_COUNTED = ("signature.created", *REFUSED_AUTHORIZATIONS)
_BATCH = 5000


@dataclass
class TrailCounts:
    """Counts over the audit trail, advanced from a cursor (the trail only grows), so a probe
    reads only the records appended since the last one."""

    seq: int = 0
    # signatures by the operation that made them: signHash (one per hash), signDoc (one per
    # document)
    by_operation: dict[str, int] = field(default_factory=dict)
    authorizations_refused: int = 0

    @property
    def signatures_made(self) -> int:
        return sum(self.by_operation.values())

    def advance(self, services: Services) -> None:
        """Read the records appended since the last call."""
        with services.database.transaction(read_only=True) as session:
            head = session.execute(select(func.max(AuditRecord.seq))).scalar() or 0
            while self.seq < head:
                upto = min(head, self.seq + _BATCH)
                rows = session.execute(
                    select(AuditRecord.event, AuditRecord.details)
                    .where(AuditRecord.seq > self.seq, AuditRecord.seq <= upto)
                    .where(AuditRecord.event.in_(_COUNTED))
                    .order_by(AuditRecord.seq)
                ).all()
                for event, details in rows:
                    if event == "signature.created":
                        # signHash records every hash it signed; signDoc one document each
                        hashes = json.loads(details).get("hashes")
                        if isinstance(hashes, list):
                            self._add("signHash", len(hashes))
                        else:
                            self._add("signDoc", 1)
                    elif event in REFUSED_AUTHORIZATIONS:
                        self.authorizations_refused += 1
                self.seq = upto

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
        counts.advance(services)
        snapshot.signatures_made = counts.signatures_made
        snapshot.authorizations_refused = counts.authorizations_refused
        snapshot.credentials_locked = credentials_locked(services)
        with services.database.transaction(read_only=True) as session:
            snapshot.certificates = certificates_near_expiry(
                session, settings.formats.trust_roots, warning_days
            )
    return snapshot


def credentials_locked(services: Services) -> int:
    """Credentials locked now (after too many failed authorizations)."""
    with services.database.transaction(read_only=True) as session:
        query = select(func.count()).select_from(Credential).where(Credential.locked.is_(True))
        return int(session.execute(query).scalar_one())
