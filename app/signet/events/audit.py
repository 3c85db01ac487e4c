"""The audit trail: each record appended in the caller's transaction, hash-chained to the last,
and keyed: the last record of every append carries a MAC made in the HSM.

A record's hash covers its sequence number, time, fields and the previous record's hash; the
single audit_head row names the newest record. The hashes alone stop nobody who can write the
database (he recomputes them); the MAC over (seq, record_hash) needs the audit key, which never
leaves the HSM, and through the chain it vouches for every record before it. See docs/audit.md."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from signet.store import AuditHead, AuditRecord, Database, Direct

GENESIS = "0" * 64
# The domains of the audit key's MACs (signet.sam.keys encodes them with the parts).
RECORD_MAC = "audit-record"
CHECKPOINT_MAC = "audit-checkpoint"
# Where signet.store.Database.transaction() puts its audit_mac in session.info.
AUDIT_MAC_INFO = "audit_mac"


class AuditMac(Protocol):
    """HMAC-SHA-256 under the audit key in the HSM, over a domain and its parts. The
    composition root (signet.signing.context) binds signet.sam.keys.mac to the HSM and the
    key: this layer may not reach the HSM itself."""

    def __call__(self, domain: str, /, *parts: int | str) -> bytes: ...


def audit_mac_of(session: Session) -> AuditMac | None:
    """The audit key's MAC function for `session` (None without an HSM: the unit tests)."""
    return cast(AuditMac | None, session.info.get(AUDIT_MAC_INFO))


def mac_matches(mac_of: AuditMac, tag: str | None, domain: str, *parts: int | str) -> bool:
    """Whether `tag` (hex, as stored) is the audit key's MAC of `domain` and `parts`."""
    try:
        raw = bytes.fromhex(tag or "")
    except ValueError:
        return False
    return bool(raw) and hmac.compare_digest(raw, mac_of(domain, *parts))


def _canonical(details: dict[str, Any]) -> str:
    return json.dumps(
        details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def record_hash(
    seq: int,
    at: str,
    event: str,
    actor: str,
    subject: str | None,
    outcome: str,
    details: str,
    prev_hash: str,
) -> str:
    material = json.dumps(
        [seq, at, event, actor, subject, outcome, details, prev_hash],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode()).hexdigest()


_HEAD = cast(Table, AuditHead.__table__)
_RECORDS = cast(Table, AuditRecord.__table__)
# Built once: SQLAlchemy then skips statement construction and cache-key generation on
# every append (they cost more than the SQL itself). Every supported engine has
# UPDATE … RETURNING: one statement locks the head, takes the next numbers and reads the
# previous hash (not updated yet); then come the records and the head's new hash (on
# PostgreSQL in one statement, the head's update a CTE of the insert).
_BUMP_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(last_seq=_HEAD.c.last_seq + bindparam("records"))
    .returning(_HEAD.c.last_seq, _HEAD.c.last_hash)
)
_COLUMNS = (
    "seq",
    "at",
    "event",
    "actor",
    "subject",
    "outcome",
    "details",
    "prev_hash",
    "record_hash",
    "mac",
)


# Run on the driver (signet.store.Direct): SQLAlchemy's execution machinery cost more than
# these statements.
_BUMP_HEAD_DIRECT = Direct(_BUMP_HEAD)
_INSERT_RECORDS = Direct(insert(_RECORDS).values({c: bindparam(c) for c in _COLUMNS}))
_SET_HEAD_HASH = Direct(
    update(_HEAD).where(_HEAD.c.id == 1).values(last_hash=bindparam("new_hash"))
)


@functools.cache
def _insert_moving_head(count: int) -> Direct:
    """PostgreSQL: `count` records and the head's new hash in one statement, built once per
    count. As text: SQLAlchemy cannot cache the compiled form of a multi-row VALUES insert,
    so the Core equivalent was compiled again on every append."""
    rows = ", ".join("(" + ", ".join(f":{c}_{i}" for c in _COLUMNS) + ")" for i in range(count))
    return Direct(
        text(
            f"WITH moved_head AS (UPDATE {_HEAD.name} SET last_hash = :new_hash WHERE id = 1 "
            f"RETURNING id) INSERT INTO {_RECORDS.name} ({', '.join(_COLUMNS)}) VALUES {rows}"
        )
    )


@dataclass(frozen=True)
class Event:
    """One record to append: what happened, who did it, to what, and the details."""

    event: str
    actor: str
    subject: str | None = None
    outcome: str = "success"
    details: dict[str, Any] = field(default_factory=dict)


def append_event(
    session: Session,
    event: str,
    *,
    actor: str,
    subject: str | None = None,
    outcome: str = "success",
    **details: Any,
) -> int:
    """Append one record in `session`'s transaction; return its sequence number."""
    return append_events(session, [Event(event, actor, subject, outcome, details)])


def append_events(session: Session, events: Sequence[Event]) -> int:
    """Append records in order in `session`'s transaction, under the session's audit_mac
    (`append_records`); return the last one's sequence number."""
    return append_records(session.connection(), events, audit_mac_of(session))


def append_records(conn: Connection, events: Sequence[Event], mac_of: AuditMac | None) -> int:
    """Append records in order in `conn`'s transaction; return the last one's sequence
    number. The head row is locked until commit, so concurrent appenders on any number of
    nodes queue rather than fork the chain. Core statements built once, no ORM: this runs on
    every signature. Two round trips on PostgreSQL however many records, three elsewhere,
    and one MAC in the HSM (`mac_of`; none without it, in the unit tests): on the last
    record, as every record's hash covers the one before."""
    count = len(events)
    head = _BUMP_HEAD_DIRECT.first(conn, {"records": count})
    if head is None:  # a database made without the migrations (the unit tests)
        conn.execute(insert(_HEAD).values(id=1, last_seq=0, last_hash=GENESIS))
        head = _BUMP_HEAD_DIRECT.first(conn, {"records": count})
        assert head is not None
    seq, last_hash = head.last_seq - count, head.last_hash
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    records = []
    for item in events:
        seq += 1
        body = _canonical(item.details)
        digest = record_hash(
            seq, at, item.event, item.actor, item.subject, item.outcome, body, last_hash
        )
        records.append(
            {
                "seq": seq,
                "at": at,
                "event": item.event,
                "actor": item.actor,
                "subject": item.subject,
                "outcome": item.outcome,
                "details": body,
                "prev_hash": last_hash,
                "record_hash": digest,
                "mac": None,
            }
        )
        last_hash = digest
    if mac_of is not None:
        records[-1]["mac"] = mac_of(RECORD_MAC, seq, last_hash).hex()
    if conn.dialect.name == "postgresql":
        params = {f"{c}_{i}": record[c] for i, record in enumerate(records) for c in _COLUMNS}
        _insert_moving_head(count).rows(conn, {**params, "new_hash": last_hash})
    else:
        _INSERT_RECORDS.many(conn, records)
        _SET_HEAD_HASH.rows(conn, {"new_hash": last_hash})
    return seq


def append_durably(database: Database, events: Sequence[Event]) -> int:
    """Append `events` in a transaction of their own and return once it is committed, with
    their last sequence number. Threads of the process appending meanwhile share that
    transaction (`Database.group_commit`): their records go in one append, in the order the
    threads came, under one MAC and one durable commit."""
    return cast(int, database.group_commit("audit", (database.audit_mac, events), _append_all))


def _append_all(conn: Connection, payloads: list[Any]) -> list[tuple[Any, BaseException | None]]:
    groups = [events for _, events in payloads]
    mac_of = payloads[0][0]  # the same for every payload: the database's
    last = append_records(conn, [event for group in groups for event in group], mac_of)
    outcomes: list[tuple[Any, BaseException | None]] = []
    for group in reversed(groups):
        outcomes.append((last, None))
        last -= len(group)
    return outcomes[::-1]


def lock_head(session: Session) -> tuple[int, str]:
    """Lock the chain's head until `session`'s transaction ends (appenders wait); return the
    newest record's sequence number and hash."""
    head = session.connection().execute(_BUMP_HEAD, {"records": 0}).first()
    return (head.last_seq, head.last_hash) if head is not None else (0, GENESIS)


@dataclass(frozen=True)
class AuditFinding:
    """One thing wrong with the trail: about record `seq`, or (None) about the trail as a
    whole or a checkpoint file."""

    seq: int | None
    problem: str

    def __str__(self) -> str:
        return self.problem if self.seq is None else f"record {self.seq}: {self.problem}"


def _span(first: int, last: int) -> str:
    return f"record {first}" if first == last else f"records {first}..{last}"


class _MacCoverage:
    """The keyed half of the walk. A valid MAC on record m vouches, through the hashes, for
    every record before it on an unbroken stretch of the chain; so every record needs a valid
    MAC at or after it on its stretch. A MAC that fails means the records up to it were
    rewritten and re-hashed after it was made (unless a later valid MAC still vouches for
    them: then the MAC itself was altered)."""

    def __init__(self, mac_of: AuditMac, findings: list[AuditFinding]) -> None:
        self._mac_of = mac_of
        self._findings = findings
        self._uncovered: list[int] | None = None  # [first, last] since the last valid MAC
        self._failing: list[int] | None = None  # [first failing MAC, first record, more]

    def record(self, seq: int, digest: str, mac: str | None) -> None:
        if mac is None:
            if self._uncovered is None:
                self._uncovered = [seq, seq]
            else:
                self._uncovered[1] = seq
        elif mac_matches(self._mac_of, mac, RECORD_MAC, seq, digest):
            if self._failing is not None:
                first, _, more = self._failing
                self._findings.append(
                    AuditFinding(
                        first,
                        (
                            "MAC does not match, but the valid MAC of record "
                            f"{seq} vouches for the records: the MAC itself was altered"
                            + (f" (and {more} more up to it)" if more else "")
                        ),
                    )
                )
                self._failing = None
            self._uncovered = None
        else:
            if self._failing is None:
                since = self._uncovered[0] if self._uncovered else seq
                self._failing = [seq, since, 0]
            else:
                self._failing[2] += 1
            self._uncovered = None

    def stretch_ends(self) -> None:
        """The chain breaks here (or ends): nothing after it covers what came before."""
        if self._failing is not None:
            first, since, more = self._failing
            self._findings.append(
                AuditFinding(
                    first,
                    (
                        "MAC does not match: records rewritten "
                        f"(one or more of {_span(since, first)})"
                        + (f"; the MACs of {more} later records fail too" if more else "")
                    ),
                )
            )
            self._failing = None
        if self._uncovered is not None:
            first, last = self._uncovered
            self._findings.append(
                AuditFinding(
                    first,
                    (
                        f"{_span(first, last)} not covered by any MAC (appended outside Signet, or "
                        "the records after them cut off)"
                    ),
                )
            )
            self._uncovered = None


_HEAD_NOW = select(_HEAD.c.last_seq, _HEAD.c.last_hash).where(_HEAD.c.id == 1)
_NEWEST = select(func.max(_RECORDS.c.seq))


def verify_chain(session: Session, batch: int = 5000) -> tuple[int, list[AuditFinding]]:
    """Walk the chain in order; return (records checked, findings). No finding means intact.
    With the session's audit_mac (the HSM), every record MAC is checked too; without it (the
    unit tests) only the hashes are. The head is read first and the walk stops there: a live
    service appends meanwhile, and (records and head committing together) everything up to
    the head read is committed."""
    findings: list[AuditFinding] = []
    mac_of = audit_mac_of(session)
    macs = _MacCoverage(mac_of, findings) if mac_of is not None else None
    head = session.execute(_HEAD_NOW).first()
    until = head.last_seq if head is not None else None
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0
    last_seq = 0
    while True:
        query = select(AuditRecord).where(AuditRecord.seq > last_seq)
        if until is not None:
            query = query.where(AuditRecord.seq <= until)
        rows = session.execute(query.order_by(AuditRecord.seq).limit(batch)).scalars().all()
        if not rows:
            break
        for rec in rows:
            checked += 1
            broken = False
            if rec.seq != expected_seq:
                missing = (
                    f"{expected_seq}"
                    if rec.seq == expected_seq + 1
                    else f"{expected_seq}..{rec.seq - 1}"
                )
                findings.append(AuditFinding(rec.seq, f"record(s) {missing} deleted before it"))
                broken = True
            recomputed = record_hash(
                rec.seq,
                rec.at,
                rec.event,
                rec.actor,
                rec.subject,
                rec.outcome,
                rec.details,
                rec.prev_hash,
            )
            if recomputed != rec.record_hash:
                findings.append(
                    AuditFinding(
                        rec.seq, f"content edited ({rec.event}): its hash does not match its fields"
                    )
                )
            elif rec.prev_hash != expected_prev and rec.seq == expected_seq:
                findings.append(
                    AuditFinding(
                        rec.seq,
                        "not linked to the record before it (reordered, replaced or re-chained)",
                    )
                )
                broken = True
            if macs is not None:
                if broken:
                    macs.stretch_ends()
                macs.record(rec.seq, rec.record_hash, rec.mac)
            expected_prev = rec.record_hash
            expected_seq = rec.seq + 1
            last_seq = rec.seq
        session.expunge_all()
    if macs is not None:
        macs.stretch_ends()
    if head is None:
        if checked:
            findings.append(AuditFinding(0, "chain head missing"))
        return checked, findings
    if last_seq < head.last_seq:
        findings.append(
            AuditFinding(
                last_seq + 1, f"record(s) {last_seq + 1}..{head.last_seq} deleted at the end"
            )
        )
    elif head.last_hash != expected_prev:
        findings.append(AuditFinding(last_seq, "newest record does not match the chain head"))
    # Records beyond the head: appended since it was read, unless the head (read again, after
    # them) still does not reach them.
    newest = session.execute(_NEWEST).scalar()
    if newest is not None and newest > head.last_seq:
        now = session.execute(_HEAD_NOW).first()
        if now is None or newest > now.last_seq:
            findings.append(
                AuditFinding(
                    newest,
                    "records appended outside Signet (head says "
                    f"{now.last_seq if now else 'nothing'})",
                )
            )
    return checked, findings
