"""The audit trail: each record appended in the caller's transaction, hash-chained to the last.

A record's hash covers its sequence number, time, fields and the previous record's hash; the
single audit_head row names the newest record, so a deleted tail is found too."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, TextClause, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from signet.store import AuditHead, AuditRecord

GENESIS = "0" * 64


def _canonical(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def record_hash(seq: int, at: str, event: str, actor: str, subject: str | None, outcome: str,
                details: str, prev_hash: str) -> str:
    material = json.dumps(
        [seq, at, event, actor, subject, outcome, details, prev_hash],
        separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(material.encode()).hexdigest()


_HEAD = cast(Table, AuditHead.__table__)
_RECORDS = cast(Table, AuditRecord.__table__)
# Built once: SQLAlchemy then skips statement construction and cache-key generation on
# every append (they cost more than the SQL itself). Every supported engine has
# UPDATE … RETURNING: one statement locks the head, takes the next numbers and reads the
# previous hash (not updated yet); then come the records and the head's new hash (on
# PostgreSQL in one statement, the head's update a CTE of the insert).
_INSERT_RECORD = insert(_RECORDS)
_BUMP_HEAD = (update(_HEAD).where(_HEAD.c.id == 1)
              .values(last_seq=_HEAD.c.last_seq + bindparam("records"))
              .returning(_HEAD.c.last_seq, _HEAD.c.last_hash))
_SET_HEAD_HASH = update(_HEAD).where(_HEAD.c.id == 1).values(last_hash=bindparam("new_hash"))
_COLUMNS = ("seq", "at", "event", "actor", "subject", "outcome", "details", "prev_hash",
            "record_hash")


@functools.cache
def _insert_moving_head(count: int) -> TextClause:
    """PostgreSQL: `count` records and the head's new hash in one statement, built once per
    count. As text: SQLAlchemy cannot cache the compiled form of a multi-row VALUES insert,
    so the Core equivalent was compiled again on every append."""
    rows = ", ".join("(" + ", ".join(f":{c}_{i}" for c in _COLUMNS) + ")" for i in range(count))
    return text(
        f"WITH moved_head AS (UPDATE {_HEAD.name} SET last_hash = :new_hash WHERE id = 1 "
        f"RETURNING id) INSERT INTO {_RECORDS.name} ({', '.join(_COLUMNS)}) VALUES {rows}")


@dataclass(frozen=True)
class Event:
    """One record to append: what happened, who did it, to what, and the details."""

    event: str
    actor: str
    subject: str | None = None
    outcome: str = "success"
    details: dict[str, Any] = field(default_factory=dict)


def append_event(
    session: Session | Connection,
    event: str,
    *,
    actor: str,
    subject: str | None = None,
    outcome: str = "success",
    **details: Any,
) -> int:
    """Append one record in `session`'s transaction; return its sequence number."""
    return append_events(session, [Event(event, actor, subject, outcome, details)])


def append_events(session: Session | Connection, events: Sequence[Event]) -> int:
    """Append records in order in `session`'s transaction; return the last one's sequence
    number. The head row is locked until commit, so concurrent appenders on any number of
    nodes queue rather than fork the chain. Core statements on the session's connection, no
    ORM: this runs on every signature. Two round trips on PostgreSQL however many records,
    three elsewhere."""
    conn = session.connection() if isinstance(session, Session) else session
    count = len(events)
    head = conn.execute(_BUMP_HEAD, {"records": count}).first()
    if head is None:  # a database made without the migrations (the unit tests)
        conn.execute(insert(_HEAD).values(id=1, last_seq=0, last_hash=GENESIS))
        head = conn.execute(_BUMP_HEAD, {"records": count}).first()
        assert head is not None
    seq, last_hash = head.last_seq - count, head.last_hash
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    records = []
    for item in events:
        seq += 1
        body = _canonical(item.details)
        digest = record_hash(seq, at, item.event, item.actor, item.subject, item.outcome, body,
                             last_hash)
        records.append({"seq": seq, "at": at, "event": item.event, "actor": item.actor,
                        "subject": item.subject, "outcome": item.outcome, "details": body,
                        "prev_hash": last_hash, "record_hash": digest})
        last_hash = digest
    if conn.dialect.name == "postgresql":
        params = {f"{c}_{i}": record[c] for i, record in enumerate(records) for c in _COLUMNS}
        conn.execute(_insert_moving_head(count), {**params, "new_hash": last_hash})
    else:
        conn.execute(_INSERT_RECORD, records)
        conn.execute(_SET_HEAD_HASH, {"new_hash": last_hash})
    return seq


@dataclass(frozen=True)
class AuditFinding:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.problem}"


def verify_chain(session: Session, batch: int = 5000) -> tuple[int, list[AuditFinding]]:
    """Walk the chain in order; return (records checked, findings). No finding means intact."""
    findings: list[AuditFinding] = []
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0
    last_seq = 0
    while True:
        rows = session.execute(
            select(AuditRecord).where(AuditRecord.seq > last_seq)
            .order_by(AuditRecord.seq).limit(batch)
        ).scalars().all()
        if not rows:
            break
        for rec in rows:
            checked += 1
            if rec.seq != expected_seq:
                missing = (f"{expected_seq}" if rec.seq == expected_seq + 1
                           else f"{expected_seq}..{rec.seq - 1}")
                findings.append(AuditFinding(rec.seq, f"record(s) {missing} deleted before it"))
            recomputed = record_hash(rec.seq, rec.at, rec.event, rec.actor, rec.subject,
                                     rec.outcome, rec.details, rec.prev_hash)
            if recomputed != rec.record_hash:
                findings.append(AuditFinding(rec.seq, f"content edited ({rec.event}): its hash "
                                                      "does not match its fields"))
            elif rec.prev_hash != expected_prev and rec.seq == expected_seq:
                findings.append(AuditFinding(rec.seq, "not linked to the record before it "
                                                      "(reordered, replaced or re-chained)"))
            expected_prev = rec.record_hash
            expected_seq = rec.seq + 1
            last_seq = rec.seq
        session.expunge_all()
    head = session.get(AuditHead, 1)
    if head is not None:
        if head.last_seq != last_seq:
            if head.last_seq > last_seq:
                findings.append(AuditFinding(
                    last_seq + 1, f"record(s) {last_seq + 1}..{head.last_seq} deleted at the end"))
            else:
                findings.append(AuditFinding(last_seq, "records appended outside Signet "
                                                       f"(head says {head.last_seq})"))
        elif head.last_hash != expected_prev:
            findings.append(AuditFinding(last_seq, "newest record does not match the chain head"))
    elif checked:
        findings.append(AuditFinding(0, "chain head missing"))
    return checked, findings
