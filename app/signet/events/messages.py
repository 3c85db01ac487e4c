"""What a sink receives: one event (an audit record or an operational event) rendered as an
RFC 5424 syslog message whose body is RFC 5424 text, JSON or CEF.

The fields and the severities are tabled in monitoring/siem-fields.md; a test holds that table
and FIELDS / SEVERITY below to each other."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from signet.events.audit import record_hash

Kind = Literal["audit", "operational"]
# Whether the record's hash and link were found intact by the forwarder: "chained" (its hash
# matches its fields and its prev_hash the record before), "hash-mismatch" (edited in the
# database), "chain-break" (its prev_hash is not the hash of the record before it). Operational
# events are not chained: "unchained".
Integrity = Literal["chained", "hash-mismatch", "chain-break", "unchained"]


@dataclass(frozen=True)
class Field:
    """One field of a forwarded event, and its name in each rendering."""

    name: str
    json_key: str
    cef_key: str  # an extension key, or "header:<position>" for a CEF header field
    sd_param: str  # its PARAM-NAME under signet@<PEN>, or "" when not in the structured data


FIELDS: tuple[Field, ...] = (
    Field("seq", "seq", "externalId", "seq"),
    Field("at", "at", "rt", ""),
    Field("event", "event", "header:signature_id", ""),
    Field("name", "name", "header:name", ""),
    Field("severity", "severity", "header:severity", "severity"),
    Field("kind", "kind", "cat", "kind"),
    Field("actor", "actor", "suser", "actor"),
    Field("subject", "subject", "duser", "subject"),
    Field("outcome", "outcome", "outcome", "outcome"),
    Field("details", "details", "msg", ""),
    Field("record_hash", "record_hash", "cs1", "hash"),
    Field("prev_hash", "prev_hash", "cs2", "prev"),
    Field("integrity", "integrity", "cs3", "integrity"),
    Field("host", "host", "dvchost", ""),
)
# CEF custom string labels (csN carries the value, csNLabel says what it is).
CEF_LABELS = {"cs1": "recordHash", "cs2": "prevHash", "cs3": "integrity"}

# CEF severity (0-10) per event; anything unlisted: 3 on success, 5 on failure. An integrity
# finding overrides the event's own severity with 10.
SEVERITY: dict[str, int] = {
    "audit.checkpoint": 1,
    "service.started": 2,
    "service.stopped": 4,
    "login.failed": 4,
    "pin.failed": 5,
    "otp.failed": 5,
    "sad.rejected": 5,
    "signature.failed": 5,
    "credential.revoked": 5,
    "mobile.call_refused": 5,
    # a replayed or foreign approval: someone holds (or relays) what only the phone should
    "mobile.replay": 6,
    "mobile.signature_invalid": 6,
    "certificate.expiring": 6,
    "credential.locked": 7,
    "login.burst": 8,
    "events.dropped": 8,
    "database.unreachable": 9,
    "hsm.unreachable": 9,
    "database.reachable": 3,
    "hsm.reachable": 3,
    "integrity.violation": 10,
}
DEFAULT_SEVERITY = {"success": 3, "failure": 5}
INTEGRITY_SEVERITY = 10


def cef_severity(event: str, outcome: str, integrity: str) -> int:
    if integrity in ("hash-mismatch", "chain-break"):
        return INTEGRITY_SEVERITY
    return SEVERITY.get(event, DEFAULT_SEVERITY.get(outcome, 5))


def syslog_severity(cef: int) -> int:
    """RFC 5424 severity from the CEF one: 9-10 critical, 7-8 error, 5-6 warning, 3-4 notice,
    0-2 informational."""
    return 2 if cef >= 9 else 3 if cef >= 7 else 4 if cef >= 5 else 5 if cef >= 3 else 6


@dataclass(frozen=True)
class Forwarded:
    """One event on its way to the sinks."""

    kind: Kind
    event: str
    at: str  # ISO 8601, UTC
    actor: str
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
    seq: int | None = None
    record_hash: str | None = None
    prev_hash: str | None = None
    integrity: Integrity = "unchained"

    @property
    def severity(self) -> int:
        return cef_severity(self.event, self.outcome, self.integrity)

    @property
    def name(self) -> str:
        return self.event.replace(".", " ").replace("_", " ")


def from_record(row: Any, expected_prev: str | None) -> Forwarded:
    """An audit record as read from the database, with what its hash and link say about it.
    `expected_prev`: the hash of the record before it, when known (None at a batch's start
    with no cursor hash)."""
    recomputed = record_hash(
        row.seq,
        row.at,
        row.event,
        row.actor,
        row.subject,
        row.outcome,
        row.details,
        row.prev_hash,
    )
    integrity: Integrity = "chained"
    if recomputed != row.record_hash:
        integrity = "hash-mismatch"
    elif expected_prev is not None and row.prev_hash != expected_prev:
        integrity = "chain-break"
    try:
        details = json.loads(row.details)
    except ValueError:
        details = {"unparsable": row.details}
    return Forwarded(
        kind="audit",
        event=row.event,
        at=row.at,
        actor=row.actor,
        outcome=row.outcome,
        details=details if isinstance(details, dict) else {"value": details},
        subject=row.subject,
        seq=row.seq,
        record_hash=row.record_hash,
        prev_hash=row.prev_hash,
        integrity=integrity,
    )


def values(item: Forwarded, host: str) -> dict[str, Any]:
    """Every field of FIELDS, by name."""
    return {
        "seq": item.seq,
        "at": item.at,
        "event": item.event,
        "name": item.name,
        "severity": item.severity,
        "kind": item.kind,
        "actor": item.actor,
        "subject": item.subject,
        "outcome": item.outcome,
        "details": item.details,
        "record_hash": item.record_hash,
        "prev_hash": item.prev_hash,
        "integrity": item.integrity,
        "host": host,
    }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# -- bodies ---------------------------------------------------------------------------------


def json_body(item: Forwarded, host: str) -> str:
    fields = values(item, host)
    return _canonical({f.json_key: fields[f.name] for f in FIELDS})


def text_body(item: Forwarded, host: str) -> str:
    subject = f" on {item.subject}" if item.subject else ""
    text = f"{item.event} by {item.actor}{subject}: {item.outcome} {_canonical(item.details)}"
    return _one_line(text)


def _cef_header(value: str) -> str:
    # CEF: in header fields a backslash and a pipe are escaped; a line break is not allowed.
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_extension(value: str) -> str:
    # CEF: in extension values a backslash and an equals sign are escaped, and line breaks
    # are written \r and \n.
    return (
        value.replace("\\", "\\\\")
        .replace("=", "\\=")
        .replace("\r\n", "\\n")
        .replace("\r", "\\r")
        .replace("\n", "\\n")
    )


def cef_body(item: Forwarded, host: str, version: str) -> str:
    fields = values(item, host)
    header = {f.cef_key.removeprefix("header:"): fields[f.name] for f in FIELDS}
    head = "|".join(
        [
            "CEF:0",
            _cef_header("Signet"),
            _cef_header("Signet"),
            _cef_header(version),
            _cef_header(str(header["signature_id"])),
            _cef_header(str(header["name"])),
            str(header["severity"]),
        ]
    )
    extension: list[str] = []
    for f in FIELDS:
        value = fields[f.name]
        if f.cef_key.startswith("header:") or value is None:
            continue
        if f.name == "at":
            value = int(datetime.fromisoformat(value).timestamp() * 1000)
        elif f.name == "details":
            value = _canonical(value)
        extension.append(f"{f.cef_key}={_cef_extension(str(value))}")
        if f.cef_key in CEF_LABELS:
            extension.append(f"{f.cef_key}Label={CEF_LABELS[f.cef_key]}")
    return head + "|" + " ".join(extension)


# -- the syslog frame -------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(value: str) -> str:
    """Control characters written as \\uXXXX: a line break in a user name must not split a
    message in a line-oriented store (JSON and CEF bodies escape them their own way)."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", value)


def _sd_value(value: str) -> str:
    # RFC 5424 6.3.3: '"', '\\' and ']' are escaped with a backslash inside PARAM-VALUE.
    value = value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return _one_line(value)


def structured_data(item: Forwarded, host: str, enterprise_number: int) -> str:
    fields = values(item, host)
    params = [
        f'{f.sd_param}="{_sd_value(str(fields[f.name]))}"'
        for f in FIELDS
        if f.sd_param and fields[f.name] is not None
    ]
    return f"[signet@{enterprise_number} {' '.join(params)}]"


def _header_token(value: str, limit: int) -> str:
    # HOSTNAME, APP-NAME, PROCID and MSGID: printable US-ASCII without spaces, bounded.
    cleaned = "".join(c if "!" <= c <= "~" else "_" for c in value)[:limit]
    return cleaned or "-"


def syslog_message(
    item: Forwarded,
    *,
    body_format: str,
    facility: int,
    host: str,
    app_name: str,
    procid: str,
    enterprise_number: int,
    version: str,
) -> bytes:
    """One RFC 5424 message (without transport framing)."""
    pri = facility * 8 + syslog_severity(item.severity)
    timestamp = datetime.fromisoformat(item.at).isoformat(timespec="microseconds")
    timestamp = timestamp.replace("+00:00", "Z")
    if body_format == "json":
        body = json_body(item, host)
    elif body_format == "cef":
        body = cef_body(item, host, version)
    else:
        body = text_body(item, host)
    header = " ".join(
        [
            f"<{pri}>1",
            timestamp,
            _header_token(host, 255),
            _header_token(app_name, 48),
            _header_token(procid, 128),
            _header_token(item.event, 32),
            structured_data(item, host, enterprise_number),
        ]
    )
    return (header + " " + body).encode()


def operational(
    event: str, *, at: str, actor: str, outcome: str, subject: str | None = None, **details: Any
) -> Forwarded:
    return Forwarded(
        kind="operational",
        event=event,
        at=at,
        actor=actor,
        outcome=outcome,
        subject=subject,
        details=dict(details),
    )
