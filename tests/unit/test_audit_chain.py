"""The audit chain finds every edited, deleted or reordered record and names it."""

import pytest
from sqlalchemy import create_engine, delete, update
from sqlalchemy.orm import Session

from signet.events import append_event, verify_chain
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
            last = append_events(s, [Event("two", "a", details={"k": 2}),
                                     Event("three", "b", "x", "failure", {"k": 3})])
        with database.transaction() as s:
            append_event(s, "four", actor="a")
        with database.transaction() as s:
            assert last == 3
            assert verify_chain(s) == (4, [])
            rows = s.query(AuditRecord).order_by(AuditRecord.seq).all()
            assert [(r.seq, r.event, r.subject, r.outcome) for r in rows] == [
                (1, "one", None, "success"), (2, "two", None, "success"),
                (3, "three", "x", "failure"), (4, "four", None, "success")]
            assert s.get(AuditHead, 1).last_hash == rows[-1].record_hash
    finally:
        database.dispose()
