"""The CA-connector interface; connectors are plug-ins in the entry-point group
`signet.ca_connectors` (the built-in local CA is one of them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509

from signet.config import Settings
from signet.hsm import Hsm
from signet.store import Database

ENTRY_POINT_GROUP = "signet.ca_connectors"


class CAError(Exception):
    """The CA refused or failed; the message names the CA and the reason."""


@dataclass(frozen=True)
class IssueRequest:
    csr: asn1_csr.CertificationRequest
    common_name: str
    email: str | None = None
    validity_days: int = 730
    qc_statements: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class CAConnector(Protocol):
    """What Signet needs from a CA. Constructed with (settings, hsm, database)."""

    name: str

    def ensure_ready(self) -> bool:
        """Create or check whatever the CA needs before its first issue (idempotent); True
        when something was created."""

    def issue(self, request: IssueRequest) -> list[asn1_x509.Certificate]:
        """Certify the CSR's key; return [end-entity, intermediates..., root]."""

    def revoke(self, serial: int, reason: str = "unspecified") -> None:
        """Revoke a certificate this CA issued."""

    def chain(self) -> list[asn1_x509.Certificate]:
        """The CA's own chain, issuing CA first."""


def load_connector(settings: Settings, hsm: Hsm, database: Database) -> CAConnector:
    name = settings.ca.connector
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise CAError(
            f"ca.connector: no CA connector named {name!r} (installed: "
            f"{', '.join(known) or 'none'})"
        )
    try:
        cls = matches[0].load()
    except Exception as exc:  # a broken plug-in must not take the service down with a trace
        raise CAError(f"ca.connector: cannot load {name!r}: {exc}") from exc
    connector = cls(settings, hsm, database)
    if not isinstance(connector, CAConnector):
        raise CAError(f"ca.connector: {name!r} does not implement the CA-connector interface")
    return connector
