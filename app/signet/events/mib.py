"""SIGNET-MIB's object layout (monitoring/SIGNET-MIB.txt), relative to the configured root:
what the SNMP sink's notifications carry and the status agent serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The SMI base type a value travels as: pass_persist's type words and pysnmp's classes.
SmiType = Literal["string", "integer", "gauge", "counter64", "unsigned"]

UP, DOWN, UNKNOWN = 1, 2, 3  # SignetComponentStatus
CERT_ROLES = {"ca": 1, "tsa": 2, "signer": 3}


@dataclass(frozen=True)
class MibObject:
    name: str
    arc: tuple[int, ...]  # below the module's root
    type: SmiType


_OBJECTS = [
    MibObject("signetSoftwareVersion", (1, 1), "string"),
    MibObject("signetNodeName", (1, 2), "string"),
    MibObject("signetDatabaseEngine", (1, 3), "string"),
    MibObject("signetHsmTokenLabel", (1, 4), "string"),
    MibObject("signetSignaturesMade", (2, 1), "counter64"),
    MibObject("signetAuthorizationsRefused", (2, 2), "counter64"),
    MibObject("signetCredentialsLocked", (2, 3), "gauge"),
    MibObject("signetServiceStatus", (3, 1), "integer"),
    MibObject("signetHsmStatus", (3, 2), "integer"),
    MibObject("signetHsmReason", (3, 3), "string"),
    MibObject("signetDatabaseStatus", (3, 4), "integer"),
    MibObject("signetDatabaseReason", (3, 5), "string"),
    MibObject("signetStatusAge", (3, 6), "unsigned"),
    MibObject("signetCertsNearExpiry", (3, 7), "gauge"),
    # signetCertTable (3, 8), signetCertEntry (3, 8, 1): columns, indexed by position
    MibObject("signetCertRole", (3, 8, 1, 2), "integer"),
    MibObject("signetCertSubject", (3, 8, 1, 3), "string"),
    MibObject("signetCertNotAfter", (3, 8, 1, 4), "string"),
    MibObject("signetCertDaysLeft", (3, 8, 1, 5), "integer"),
    # accessible-for-notify
    MibObject("signetTrapCredentialId", (4, 1, 1), "string"),
    MibObject("signetTrapCertRole", (4, 1, 2), "integer"),
    MibObject("signetTrapCertSubject", (4, 1, 3), "string"),
    MibObject("signetTrapCertNotAfter", (4, 1, 4), "string"),
    MibObject("signetTrapCertDaysLeft", (4, 1, 5), "integer"),
    MibObject("signetTrapEventName", (4, 1, 6), "string"),
    MibObject("signetTrapEventSeq", (4, 1, 7), "counter64"),
    MibObject("signetTrapEventSeverity", (4, 1, 8), "integer"),
    MibObject("signetTrapEventOutcome", (4, 1, 9), "string"),
    MibObject("signetTrapEventActor", (4, 1, 10), "string"),
    MibObject("signetTrapEventSubject", (4, 1, 11), "string"),
    MibObject("signetTrapEventTime", (4, 1, 12), "string"),
    MibObject("signetTrapEventHash", (4, 1, 13), "string"),
    MibObject("signetTrapEventPrevHash", (4, 1, 14), "string"),
    MibObject("signetTrapEventIntegrity", (4, 1, 15), "integer"),
    MibObject("signetTrapEventDetails", (4, 1, 16), "string"),
    MibObject("signetTrapEventNode", (4, 1, 17), "string"),
]
OBJECTS = {o.name: o for o in _OBJECTS}

# signetNotifications ::= { signetTraps 0 }
NOTIFICATIONS = {
    "signetHsmDown": (4, 0, 1),
    "signetHsmUp": (4, 0, 2),
    "signetDatabaseDown": (4, 0, 3),
    "signetDatabaseUp": (4, 0, 4),
    "signetCredentialLocked": (4, 0, 5),
    "signetCertificateNearExpiry": (4, 0, 6),
    "signetEvent": (4, 0, 7),
    "signetAuditIntegrityViolation": (4, 0, 8),
}
# signetTrapEventIntegrity
INTEGRITY = {"chained": 1, "hash-mismatch": 2, "chain-break": 3, "unchained": 4}


def parse_oid(dotted: str) -> tuple[int, ...]:
    return tuple(int(part) for part in dotted.strip(".").split("."))


def dotted(oid: tuple[int, ...]) -> str:
    return "." + ".".join(str(part) for part in oid)
