"""Engines, sessions and migrations for every supported database."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from signet.config import DatabaseSettings
from signet.errors import BackendError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

T = TypeVar("T")


class StoreError(BackendError):
    """The database cannot be reached or used; the message says which and why."""


def _sqlite_path(url: str) -> str | None:
    prefix = "sqlite:///"
    return url[len(prefix) :] if url.startswith(prefix) else None


def make_engine(settings: DatabaseSettings) -> Engine:
    url = settings.url
    kwargs: dict[str, Any] = {"echo": settings.echo, "future": True}
    sqlite_path = _sqlite_path(url)
    if url.startswith("sqlite"):
        if sqlite_path and sqlite_path != ":memory:":
            Path(sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        # No ping on every checkout (a round trip per transaction): connections are recycled,
        # and a dropped one invalidates the pool and surfaces as StoreError (503) once.
        kwargs.update(pool_size=settings.pool_size, pool_recycle=300, max_overflow=10)
        if url.startswith("postgresql:"):
            url = "postgresql+psycopg:" + url[len("postgresql:") :]
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _serialise_sqlite_writers(engine)
    return engine


_read_only: ContextVar[bool] = ContextVar("signet_read_only", default=False)


def _serialise_sqlite_writers(engine: Engine) -> None:
    """SQLite: WAL so readers never block, and BEGIN IMMEDIATE for transactions that may write,
    so two workers queue for the write lock instead of deadlocking on an upgrade from read to
    write. Read-only transactions take no write lock."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # On the driver's connection: through SQLAlchemy's execution it cost as much as a
        # query, on every transaction.
        statement = "BEGIN" if _read_only.get() else "BEGIN IMMEDIATE"
        try:
            conn.connection.driver_connection.execute(statement)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc


class _WriterQueue:
    """SQLite lets one writer in at a time and makes the others poll with growing sleeps
    (1, 2, 5, 10 … 100 ms), which under load costs more than the writes themselves. Writers
    queue here instead, on a lock file beside the database: threads on a mutex, processes on
    flock(2), and the kernel wakes the next one the moment the lock is free."""

    def __init__(self, path: str) -> None:
        self._path = path + ".writer-lock"
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._mutex:
            if self._fd is None or self._pid != os.getpid():
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


class _Work:
    """One thread's part of a grouped transaction: what it brings, then its outcome. `wake`
    is held until the thread is to go on: its group has committed, or it leads the next."""

    __slots__ = ("done", "error", "payload", "result", "wake")

    def __init__(self, payload: Any) -> None:
        self.payload = payload
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.wake = threading.Lock()
        self.wake.acquire()


class _Group:
    """The threads of a process waiting to write the same kind of thing: one of them at a
    time runs everything queued so far in one transaction (group commit), on the group's own
    connection (one leader at a time uses it: no checkout from the pool, no reset on return)."""

    def __init__(self, durable: bool) -> None:
        self.lock = threading.Lock()
        self.queue: list[_Work] = []
        self.leading = False
        self.durable = durable
        self.connection: Connection | None = None


# What a group's runner gives back for each payload, in order: (result, None) or (None, error).
Outcome = tuple[Any, BaseException | None]
GroupRunner = Callable[[Connection, list[Any]], list[Outcome]]


class Database:
    """One per process: an engine and a session factory."""

    # The audit key's MAC (signet.events.audit.AuditMac), set by the composition root where
    # there is an HSM; every transaction carries it in session.info for the audit trail.
    audit_mac: Callable[..., bytes] | None = None

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._pid = os.getpid()
        path = _sqlite_path(settings.url)
        self._writers = _WriterQueue(path) if path and path != ":memory:" else None
        self._groups: dict[str, _Group] = {}
        self._groups_lock = threading.Lock()
        self._forsaken: list[dict[str, _Group]] = []

    def _after_fork(self) -> None:
        # Connections must not cross a fork (gunicorn preloads, then forks workers).
        if os.getpid() != self._pid:
            self.engine.dispose(close=False)
            # The parent's group connections stay referenced, never closed here: closing
            # one would end the parent's session on the server.
            self._forsaken.append(self._groups)
            self._groups, self._groups_lock = {}, threading.Lock()
            self._pid = os.getpid()

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception.
        A lost or unusable database connection becomes StoreError."""
        self._after_fork()
        queue = self._writers.held() if self._writers and not read_only else nullcontext()
        session = self._sessions()
        if self.audit_mac is not None:
            session.info["audit_mac"] = self.audit_mac
        marker = _read_only.set(read_only)
        try:
            with queue, session.begin():
                yield session
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(exc) from exc
        finally:
            _read_only.reset(marker)
            session.close()

    @contextmanager
    def _group_transaction(self, group: _Group) -> Iterator[Connection]:
        """A write transaction on `group`'s own Core connection, no ORM session (the signing
        hot path: a session's set-up and teardown, and a pool checkout with its reset, cost
        more than the statements): commits on success, rolls back on any exception. A
        connection that failed is closed (the next group opens another); a lost or unusable
        one becomes StoreError."""
        queue = self._writers.held() if self._writers else nullcontext()
        try:
            with queue:
                conn = group.connection
                if conn is None:
                    conn = group.connection = self._group_connection(group.durable)
                try:
                    with conn.begin():
                        yield conn
                except BaseException as exc:
                    if isinstance(exc, SQLAlchemyError) or not isinstance(exc, Exception):
                        group.connection = None
                        with suppress(SQLAlchemyError):
                            conn.invalidate()  # closed, not pooled: it may not be durable
                            conn.close()
                    raise
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(exc) from exc

    def _group_connection(self, durable: bool) -> Connection:
        """A connection of a group's own; not `durable`: its commits do not wait for the disk
        (SQLite's synchronous=NORMAL, PostgreSQL's synchronous_commit off; durable on other
        engines). They are atomic and seen by everyone at once, and the next durable commit
        of any connection makes them durable too, as the log is written in order; a power
        loss or a crash of the database server before that may undo them."""
        conn = self.engine.connect()
        if not durable:
            dialect = self.engine.dialect.name
            if dialect == "sqlite":  # outside a transaction, where SQLite takes it
                cast(Any, conn.connection.driver_connection).execute("PRAGMA synchronous=NORMAL")
            elif dialect == "postgresql":
                conn.exec_driver_sql("SET synchronous_commit = off")
                conn.commit()
        return conn

    def group_commit(
        self, kind: str, payload: Any, run: GroupRunner, *, durable: bool = True
    ) -> Any:
        """Write `payload` in a transaction shared with the other threads of this process that
        bring a payload of the same `kind` meanwhile: one of them runs `run(connection,
        payloads)` for all, in the order they came, and commits once — one turn at the write
        lock and one commit for the group instead of one each, durable unless `durable` is
        False (`_group_connection`; the same for every call of a kind). Returns this
        payload's result once that commit is done; raises its own error, or the
        transaction's failure (then nothing of the group is kept).

        A thread that finds a group running queues and sleeps on a lock of its own. When a
        group ends, its leader wakes the threads of that group (their outcome is set) and the
        first thread queued since, which leads the next group with everything queued by then;
        the other queued threads sleep on (no thread wakes only to find it must wait again)."""
        self._after_fork()
        with self._groups_lock:
            group = self._groups.get(kind)
            if group is None:
                group = self._groups[kind] = _Group(durable)
        mine = _Work(payload)
        with group.lock:
            group.queue.append(mine)
            waiting, group.leading = group.leading, True
        if waiting:
            mine.wake.acquire()
        if not mine.done:  # this thread leads: everything queued so far, itself first
            with group.lock:
                batch, group.queue = group.queue, []
            try:
                self._run_group(group, batch, run)
            finally:
                with group.lock:
                    following = group.queue[0] if group.queue else None
                    group.leading = following is not None
                if following is not None:
                    following.wake.release()
                for item in batch:
                    if item is not mine:
                        item.wake.release()
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _run_group(self, group: _Group, batch: list[_Work], run: GroupRunner) -> None:
        pending = batch
        try:
            while pending:
                try:
                    with self._group_transaction(group) as conn:
                        outcomes = run(conn, [item.payload for item in pending])
                except FailsAlone as failed:  # rolled back: the others again, without it
                    pending[failed.index].error = failed.error
                    pending = pending[: failed.index] + pending[failed.index + 1 :]
                    continue
                for item, (result, error) in zip(pending, outcomes, strict=True):
                    item.result, item.error = result, error
                break
        except BaseException as exc:
            for item in pending:
                item.result, item.error = None, exc
        finally:
            for item in batch:
                item.done = True

    def grouped(self, work: Callable[[Connection], T], *, durable: bool = True) -> T:
        """`work(connection)` by `group_commit`, the works of a group one after the other in
        one transaction. A work that raises gets its error, and the transaction is rolled
        back and run again without it: no savepoints, which cost two statements a work (two
        round trips on PostgreSQL) where a refusal is the rare case."""
        kind = "works" if durable else "works, not durable"
        return cast(T, self.group_commit(kind, work, _all_or_again, durable=durable))

    @contextmanager
    def single_read(self) -> Iterator[Connection]:
        """A connection for one reading statement. Outside SQLite it runs without a
        transaction (autocommit): one statement is its own snapshot, and BEGIN and COMMIT
        would be two more round trips on every API call. SQLite: a read transaction."""
        if self.engine.dialect.name == "sqlite":
            with self.transaction(read_only=True) as session:
                yield session.connection()
            return
        self._after_fork()
        try:
            with self.engine.connect() as conn:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(exc) from exc

    def ping(self) -> None:
        self._after_fork()
        try:
            with self.engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT 1" if self.engine.dialect.name != "oracle" else "SELECT 1 FROM DUAL"
                    )
                )
        except SQLAlchemyError as exc:
            raise StoreError(
                f"database unreachable: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
            ) from exc

    def dispose(self) -> None:
        if os.getpid() == self._pid:
            for group in self._groups.values():
                if group.connection is not None:
                    group.connection.close()
                    group.connection = None
        self.engine.dispose()


def _unavailable(exc: OperationalError | InterfaceError) -> StoreError:
    return StoreError(
        f"database unavailable: {exc.__class__.__name__}: {str(exc.orig or exc).splitlines()[0]}"
    )


class FailsAlone(Exception):
    """Raised by a group's runner: payload `index` failed with `error`, the others may still
    commit. The group's transaction is rolled back and run again without it."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


def _all_or_again(conn: Connection, works: list[Callable[[Connection], Any]]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for index, work in enumerate(works):
        try:
            outcomes.append((work(conn), None))
        except (OperationalError, InterfaceError):
            raise  # the transaction itself failed: the whole group fails
        except Exception as exc:
            if len(works) == 1:
                raise  # its error fails the transaction, and so it
            raise FailsAlone(index, exc) from exc
    return outcomes


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(settings: DatabaseSettings, revision: str = "head") -> tuple[str, str]:
    """Migrate the database to `revision`; return (revision before, revision reached)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    db = Database(settings)
    try:
        with db.engine.connect() as conn:
            before = MigrationContext.configure(conn).get_current_revision() or "base"
        with db.engine.begin() as conn:
            cfg = alembic_config(settings.url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        with db.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed: {str(exc).splitlines()[0]}") from exc
    finally:
        db.dispose()
    return before, current or "base"


def bulk_update(entity: Any) -> Any:
    """An UPDATE statement judged by the database alone: SQLAlchemy must not re-evaluate its
    WHERE in Python (naive SQLite datetimes against aware ones)."""
    from sqlalchemy import update

    return update(entity).execution_options(synchronize_session=False)
