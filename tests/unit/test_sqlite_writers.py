"""SQLite writers queue on the lock file (woken by the kernel), not in SQLite's sleeping busy
handler; readers never queue."""

import fcntl
import os
import sqlite3
import threading
import time

from sqlalchemy import select

from signet.config import DatabaseSettings
from signet.errors import InvalidRequest
from signet.events import Event, append_durably, append_event, verify_chain
from signet.store import AuditRecord, Database, upgrade


def test_a_writer_waits_for_the_lock_file_before_touching_sqlite(tmp_path):
    settings = DatabaseSettings(url=f"sqlite:///{tmp_path}/signet.db")
    upgrade(settings)
    database = Database(settings)
    done = threading.Event()

    def write() -> None:
        with database.transaction() as session:
            append_event(session, "test.queued", actor="tester")
        done.set()

    lock_fd = os.open(f"{tmp_path}/signet.db.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # another process is writing
    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert not done.wait(0.5), "the writer did not wait for the lock file"
        # It waits in the queue, not inside SQLite: the database's write lock is free...
        raw = sqlite3.connect(f"{tmp_path}/signet.db", timeout=0, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("ROLLBACK")
        raw.close()
        # ...and readers go on meanwhile.
        with database.transaction(read_only=True) as session:
            session.execute(select(AuditRecord.seq)).all()
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
    writer.join(timeout=30)
    assert done.is_set()
    with database.transaction(read_only=True) as session:
        events = session.execute(select(AuditRecord.event)).scalars().all()
    assert events[-1] == "test.queued"


def test_writers_that_wait_meanwhile_commit_together_each_failure_alone(tmp_path):
    """Threads that come while the write lock is taken go in as one group at the next turn:
    one transaction (the audit records of `append_durably` in one append), each `grouped`
    work in a savepoint, so a work that fails is rolled back alone and gets its own error."""
    settings = DatabaseSettings(url=f"sqlite:///{tmp_path}/signet.db")
    upgrade(settings)
    database = Database(settings)
    outcomes: dict[str, object] = {}

    def audit(name: str) -> None:
        outcomes[name] = append_durably(database, [Event("test.grouped", name)] * 2)

    def work(name: str) -> None:
        def run(session):
            append_event(session, "test.work", actor=name)
            if name == "w-bad":
                raise InvalidRequest("refused alone")
            return name

        try:
            outcomes[name] = database.grouped(run)
        except InvalidRequest as exc:
            outcomes[name] = exc

    lock_fd = os.open(f"{tmp_path}/signet.db.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # another process is writing
    threads = [threading.Thread(target=audit, args=(f"a{i}",)) for i in range(4)]
    threads += [threading.Thread(target=work, args=(n,)) for n in ("w-1", "w-bad", "w-2")]
    try:
        for kind, group in (("audit", threads[:4]), ("savepoints", threads[4:])):
            for queued, thread in enumerate(group):
                thread.start()  # the first leads and waits for the lock; the others queue
                while (
                    kind not in database._groups
                    or not database._groups[kind].leading
                    or len(database._groups[kind].queue) < queued
                ):
                    time.sleep(0.01)
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
    for thread in threads:
        thread.join(timeout=30)
    with database.transaction(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.seq, AuditRecord.event, AuditRecord.actor, AuditRecord.at).order_by(
                AuditRecord.seq
            )
        ).all()
    grouped = [r for r in rows if r.event == "test.grouped"]
    assert [r.actor for r in grouped] == ["a0", "a0", "a1", "a1", "a2", "a2", "a3", "a3"]
    # the first came alone; the three that waited went in as one append (one time, one seq run)
    assert len({r.at for r in grouped[2:]}) == 1 and grouped[2].at != grouped[0].at
    assert outcomes["a3"] == grouped[-1].seq and outcomes["a1"] == grouped[3].seq
    works = [r.actor for r in rows if r.event == "test.work"]
    assert works == ["w-1", "w-2"]
    assert outcomes["w-1"] == "w-1" and outcomes["w-2"] == "w-2"
    assert isinstance(outcomes["w-bad"], InvalidRequest)
    checked, findings = verify_chain_of(database)
    assert checked == len(rows) and not findings


def verify_chain_of(database: Database):
    with database.transaction(read_only=True) as session:
        return verify_chain(session)
