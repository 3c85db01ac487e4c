"""SQLite writers queue on the lock file (woken by the kernel), not in SQLite's sleeping busy
handler; readers never queue. Group commits wake only the threads whose turn it is."""

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import select

from signet.config import DatabaseSettings
from signet.errors import InvalidRequest
from signet.events import Event, append_durably, append_event, append_records, verify_chain
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
    one transaction (the audit records of `append_durably` in one append); a `grouped` work
    that fails gets its own error, and the others commit without what it wrote."""
    settings = DatabaseSettings(url=f"sqlite:///{tmp_path}/signet.db")
    upgrade(settings)
    database = Database(settings)
    outcomes: dict[str, object] = {}

    def audit(name: str) -> None:
        outcomes[name] = append_durably(database, [Event("test.grouped", name)] * 2)

    def work(name: str) -> None:
        def run(conn):
            append_records(conn, [Event("test.work", name)], None)
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
        for kind, group in (("audit", threads[:4]), ("works", threads[4:])):
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


def _sleeps_ended(native_id: int) -> int:
    """How often the thread has slept and been woken (voluntary context switches)."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def test_a_group_commit_wakes_its_own_threads_and_the_next_leader_only(tmp_path):
    """Threads queued for the next group sleep on while the group before them commits: only
    the first of them wakes then (it leads the next group), the others when theirs has
    committed. Before, every waiter was woken at the end of every group, to wait again."""
    database = Database(DatabaseSettings(url=f"sqlite:///{tmp_path}/signet.db"))
    gates = {"a": threading.Event(), "b": threading.Event()}
    leading: list[list[str]] = []
    outcomes: dict[str, object] = {}
    native: dict[str, int] = {}

    def run(_conn, payloads):
        leading.append(list(payloads))
        if payloads[0] in gates:
            assert gates[payloads[0]].wait(30)
        return [(name.upper(), None) for name in payloads]

    def write(name: str) -> None:
        native[name] = threading.get_native_id()
        outcomes[name] = database.group_commit("test", name, run)

    def start(name: str, queued: int) -> threading.Thread:
        thread = threading.Thread(target=write, args=(name,))
        thread.start()
        while len(database._groups["test"].queue) < queued:
            time.sleep(0.01)
        return thread

    threads = [threading.Thread(target=write, args=("a",))]
    threads[0].start()
    while not leading:
        time.sleep(0.01)  # "a" leads a group of its own and holds it at its gate
    threads += [start(name, queued) for queued, name in enumerate("bcde", 1)]
    sleepers = "cde"
    while True:  # every queued thread asleep on its wait
        before = {name: _sleeps_ended(native[name]) for name in sleepers}
        time.sleep(0.2)
        if before == {name: _sleeps_ended(native[name]) for name in sleepers}:
            break
    gates["a"].set()  # "a"'s group commits; "b" leads the next and holds it at its gate
    while len(leading) < 2:
        time.sleep(0.01)
    time.sleep(0.3)
    woken = {name: _sleeps_ended(native[name]) - before[name] for name in sleepers}
    gates["b"].set()
    for thread in threads:
        thread.join(timeout=30)
    assert leading == [["a"], ["b", "c", "d", "e"]]
    assert outcomes == {name: name.upper() for name in "abcde"}
    assert woken == dict.fromkeys(sleepers, 0), "threads of the next group were woken"
