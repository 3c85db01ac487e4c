"""The audit chain finds every edited, deleted or reordered record and names it; keyed (here
with a software key standing in for the HSM's), every rewritten, forged or cut-off one too."""

import hashlib
import hmac
import json
import secrets

import pytest
from sqlalchemy import create_engine, delete, update
from sqlalchemy.orm import Session

from signet.events import (
    Event,
    append_checkpoint,
    append_event,
    append_events,
    verify_chain,
    verify_checkpoints,
)
from signet.events.audit import GENESIS, record_hash
from signet.store import AuditHead, AuditRecord, Base


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        for i in range(1, 7):
            append_event(s, "test.event", actor="tester", subject=f"s{i}", n=i)
        s.commit()
        yield s


def check(session):
    session.expire_all()
    return verify_chain(session, batch=2)  # small batches exercise the paging too


def test_intact_chain(session):
    checked, findings = check(session)
    assert (checked, findings) == (6, [])


def test_edited_detail_is_named(session):
    session.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(details='{"n":99}'))
    _, findings = check(session)
    assert [f.seq for f in findings] == [3]
    assert "edited" in findings[0].problem


def test_edited_and_rehashed_record_breaks_the_next_link(session):
    from signet.events.audit import record_hash

    rec = session.get(AuditRecord, 3)
    rec.outcome = "failure"
    rec.record_hash = record_hash(
        rec.seq, rec.at, rec.event, rec.actor, rec.subject, rec.outcome, rec.details, rec.prev_hash
    )
    session.flush()
    _, findings = check(session)
    assert [f.seq for f in findings] == [4]
    assert "not linked" in findings[0].problem


def test_deleted_middle_record_is_named(session):
    session.execute(delete(AuditRecord).where(AuditRecord.seq == 4))
    _, findings = check(session)
    assert any(f.seq == 5 and "4 deleted" in f.problem for f in findings)


def test_deleted_tail_is_named(session):
    session.execute(delete(AuditRecord).where(AuditRecord.seq >= 5))
    _, findings = check(session)
    assert len(findings) == 1 and "5..6 deleted at the end" in findings[0].problem


def test_reordered_records_are_named(session):
    # Swap the sequence numbers of records 2 and 3.
    session.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(seq=100))
    session.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(seq=2))
    session.execute(update(AuditRecord).where(AuditRecord.seq == 100).values(seq=3))
    _, findings = check(session)
    assert {f.seq for f in findings} >= {2, 3}


def test_head_tampering_is_found(session):
    session.execute(update(AuditHead).values(last_hash="f" * 64))
    _, findings = check(session)
    assert len(findings) == 1 and "head" in findings[0].problem


def test_batches_and_single_records_chain_on_each_engine(database_url):
    """append_events puts several records in one step (two statements on PostgreSQL): they
    chain in order with single appends before and after, and the head names the last."""
    from signet.config import DatabaseSettings
    from signet.events import Event, append_events
    from signet.store import Database
    from signet.store.db import upgrade

    upgrade(DatabaseSettings(url=database_url))
    database = Database(DatabaseSettings(url=database_url))
    try:
        with database.transaction() as s:
            append_event(s, "one", actor="a")
        with database.transaction() as s:
            last = append_events(
                s,
                [
                    Event("two", "a", details={"k": 2}),
                    Event("three", "b", "x", "failure", {"k": 3}),
                ],
            )
        with database.transaction() as s:
            append_event(s, "four", actor="a")
        with database.transaction() as s:
            assert last == 3
            assert verify_chain(s) == (4, [])
            rows = s.query(AuditRecord).order_by(AuditRecord.seq).all()
            assert [(r.seq, r.event, r.subject, r.outcome) for r in rows] == [
                (1, "one", None, "success"),
                (2, "two", None, "success"),
                (3, "three", "x", "failure"),
                (4, "four", None, "success"),
            ]
            assert s.get(AuditHead, 1).last_hash == rows[-1].record_hash
    finally:
        database.dispose()


# -- keyed: a software HMAC key in place of the HSM's audit key ---------------------------------


@pytest.fixture
def keyed():
    """Records 1-6 appended one by one, 7 and 8 in one append: only 8 carries its MAC."""
    key = secrets.token_bytes(32)

    def audit_mac(domain, *parts):
        return hmac.new(key, json.dumps([domain, *parts]).encode(), hashlib.sha256).digest()

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine, info={"audit_mac": audit_mac}) as s:
        for i in range(1, 7):
            append_event(s, "test.event", actor="tester", subject=f"s{i}", n=i)
        append_events(s, [Event("batch.first", "tester"), Event("batch.last", "tester")])
        s.commit()
        yield s


def rechain(session, start):
    """What an insider does after an edit: recompute the hashes from `start` on, and the head."""
    prev = session.get(AuditRecord, start - 1).record_hash if start > 1 else GENESIS
    for rec in (
        session.query(AuditRecord).filter(AuditRecord.seq >= start).order_by(AuditRecord.seq)
    ):
        rec.prev_hash = prev
        rec.record_hash = prev = record_hash(
            rec.seq, rec.at, rec.event, rec.actor, rec.subject, rec.outcome, rec.details, prev
        )
    session.get(AuditHead, 1).last_hash = prev
    session.flush()


def test_the_last_record_of_each_append_carries_the_mac(keyed):
    macs = [bool(r.mac) for r in keyed.query(AuditRecord).order_by(AuditRecord.seq)]
    assert macs == [True] * 6 + [False, True]
    assert check(keyed) == (8, [])


def test_a_rewritten_and_rechained_record_fails_the_macs(keyed):
    keyed.get(AuditRecord, 3).outcome = "failure"
    rechain(keyed, 3)
    unkeyed = keyed.info.pop("audit_mac")
    assert check(keyed) == (8, [])  # the hashes alone are fooled
    keyed.info["audit_mac"] = unkeyed
    _, findings = check(keyed)
    assert [(f.seq, f.problem) for f in findings] == [
        (
            3,
            (
                "MAC does not match: records rewritten (one or more of record 3); the MACs of 4 "
                "later records fail too"
            ),
        )
    ]


def test_an_altered_mac_alone_is_named_as_such(keyed):
    keyed.get(AuditRecord, 3).mac = "00" * 32
    keyed.flush()
    _, findings = check(keyed)
    assert len(findings) == 1 and findings[0].seq == 3
    assert "the MAC itself was altered" in findings[0].problem


def test_records_appended_without_the_key_are_not_covered(keyed):
    audit_mac = keyed.info.pop("audit_mac")
    append_event(keyed, "forged", actor="mallory")  # chain and head as Signet would
    keyed.info["audit_mac"] = audit_mac
    _, findings = check(keyed)
    assert [(f.seq, f.problem.split(" (")[0]) for f in findings] == [
        (9, "record 9 not covered by any MAC")
    ]


def test_a_cut_inside_an_append_leaves_its_first_record_uncovered(keyed):
    keyed.execute(delete(AuditRecord).where(AuditRecord.seq == 8))
    head = keyed.get(AuditHead, 1)
    head.last_seq, head.last_hash = 7, keyed.get(AuditRecord, 7).record_hash
    keyed.flush()
    _, findings = check(keyed)
    assert [f.seq for f in findings] == [7] and "not covered" in findings[0].problem


def test_a_checkpoint_finds_the_tail_cut_at_an_append_boundary(keyed):
    checkpoint = append_checkpoint(keyed, actor="tester")
    assert (checkpoint.seq, checkpoint.record) == (8, 9)
    line = checkpoint.line()
    assert verify_checkpoints(keyed, "export", [line]) == (1, [])
    keyed.execute(delete(AuditRecord).where(AuditRecord.seq > 6))
    head = keyed.get(AuditHead, 1)
    head.last_seq, head.last_hash = 6, keyed.get(AuditRecord, 6).record_hash
    keyed.flush()
    assert check(keyed) == (6, [])  # whole, as far as hashes and MACs can tell
    _, findings = verify_checkpoints(keyed, "export", [line])
    assert [(f.seq, f.problem) for f in findings] == [
        (
            8,
            (
                f"missing, yet the checkpoint of {checkpoint.at} (export line 1) anchors it: the tail "
                "was cut (or the record deleted)"
            ),
        )
    ]
