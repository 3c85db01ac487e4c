"""Checkpoints of the audit trail: keyed statements of its head, kept outside the database.

A checkpoint states "at `at`, the newest record was `seq`, whose hash was `record_hash`",
with a MAC under the audit key. It is appended to the trail itself (record `audit.checkpoint`,
number seq + 1) and, once that record is committed, exported as one JSON line to a file. The
record MACs cannot show a tail that was cut at an append's boundary with the head rewritten to
match; a checkpoint kept where the database's writers cannot reach does."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from signet.events.audit import (
    CHECKPOINT_MAC,
    AuditFinding,
    Event,
    append_events,
    audit_mac_of,
    lock_head,
    mac_matches,
)
from signet.store import AuditRecord

CHECKPOINT_EVENT = "audit.checkpoint"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class NoAuditKey(RuntimeError):
    """A checkpoint was asked for on a session without the audit key."""


@dataclass(frozen=True)
class Checkpoint:
    """The statement: the head it anchors, when, and the audit key's MAC over both."""

    seq: int
    record_hash: str
    at: str
    mac: str

    @property
    def record(self) -> int:
        """The checkpoint's own record: appended right after the head it anchors."""
        return self.seq + 1

    def details(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return json.dumps({"event": CHECKPOINT_EVENT, **asdict(self)}, separators=(",", ":"))


def append_checkpoint(session: Session, *, actor: str) -> Checkpoint:
    """Anchor the trail's current head: append its checkpoint record in `session`'s
    transaction (to be exported once that commits). The head stays locked from the read to the
    commit, so the record is seq + 1."""
    mac_of = audit_mac_of(session)
    if mac_of is None:
        raise NoAuditKey("an audit checkpoint needs the audit key (the HSM)")
    seq, digest = lock_head(session)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    checkpoint = Checkpoint(seq, digest, at, mac_of(CHECKPOINT_MAC, seq, digest, at).hex())
    record = append_events(session, [Event(CHECKPOINT_EVENT, actor, details=checkpoint.details())])
    assert record == checkpoint.record
    return checkpoint


def export_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Append the checkpoint's line to the export file, and make it durable."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, (checkpoint.line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _parse(text: str) -> Checkpoint | None:
    try:
        value = json.loads(text)
        if not isinstance(value, dict) or value.get("event") != CHECKPOINT_EVENT:
            return None
        checkpoint = Checkpoint(value["seq"], value["record_hash"], value["at"], value["mac"])
    except (ValueError, KeyError, TypeError):
        return None
    if (
        type(checkpoint.seq) is not int
        or checkpoint.seq < 0
        or not isinstance(checkpoint.record_hash, str)
        or not _HEX64.match(checkpoint.record_hash)
        or not isinstance(checkpoint.at, str)
        or not isinstance(checkpoint.mac, str)
    ):
        return None
    return checkpoint


def verify_checkpoints(
    session: Session, path: str | Path, lines: Iterable[str]
) -> tuple[int, list[AuditFinding]]:
    """Check the trail against the exported checkpoints (the lines of the file `path`);
    return (checkpoints checked, findings). A line whose MAC fails is forged; a record a
    checkpoint anchors that is missing, or whose hash differs, means the tail was cut or
    records were rewritten; so does a missing or different checkpoint record."""
    mac_of = audit_mac_of(session)
    if mac_of is None:
        raise NoAuditKey("checking audit checkpoints needs the audit key (the HSM)")
    findings: list[AuditFinding] = []
    checked = 0
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = f"{path} line {number}"
        checkpoint = _parse(text)
        if checkpoint is None:
            findings.append(AuditFinding(None, f"{where}: not a checkpoint statement"))
            continue
        if not mac_matches(
            mac_of,
            checkpoint.mac,
            CHECKPOINT_MAC,
            checkpoint.seq,
            checkpoint.record_hash,
            checkpoint.at,
        ):
            findings.append(
                AuditFinding(
                    None,
                    (
                        f"{where}: forged checkpoint (MAC does not match) claiming record "
                        f"{checkpoint.seq}"
                    ),
                )
            )
            continue
        checked += 1
        findings += _against_trail(session, checkpoint, where)
    return checked, findings


def _against_trail(session: Session, checkpoint: Checkpoint, where: str) -> list[AuditFinding]:
    rows = {
        rec.seq: rec
        for rec in session.execute(
            select(AuditRecord).where(AuditRecord.seq.in_((checkpoint.seq, checkpoint.record)))
        ).scalars()
    }
    of = f"the checkpoint of {checkpoint.at} ({where})"
    anchored = rows.get(checkpoint.seq)
    if checkpoint.seq > 0:
        if anchored is None:
            return [
                AuditFinding(
                    checkpoint.seq,
                    f"missing, yet {of} anchors it: the tail was cut (or the record deleted)",
                )
            ]
        if anchored.record_hash != checkpoint.record_hash:
            return [AuditFinding(checkpoint.seq, f"its hash differs from {of}: records rewritten")]
    own = rows.get(checkpoint.record)
    if own is None:
        return [AuditFinding(checkpoint.record, f"missing: it is {of}, so the tail was cut")]
    if own.event != CHECKPOINT_EVENT or json.loads(own.details) != checkpoint.details():
        return [AuditFinding(checkpoint.record, f"is not {of}: records rewritten")]
    return []
