"""SQLite writers queue on the lock file (woken by the kernel), not in SQLite's sleeping busy
handler; readers never queue."""

import fcntl
import os
import sqlite3
import threading

from sqlalchemy import select

from signet.config import DatabaseSettings
from signet.events import append_event
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
