"""Engines, sessions and migrations for every supported database."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
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
        conn.exec_driver_sql("BEGIN" if _read_only.get() else "BEGIN IMMEDIATE")


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
    """One thread's part of a grouped transaction: what it brings, then its outcome."""

    __slots__ = ("done", "error", "payload", "result")

    def __init__(self, payload: Any) -> None:
        self.payload = payload
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class _Group:
    """The threads of a process waiting to write the same kind of thing: one of them at a
    time runs everything queued so far in one transaction (group commit)."""

    def __init__(self) -> None:
        self.ready = threading.Condition()
        self.queue: list[_Work] = []
        self.leading = False


# What a group's runner gives back for each payload, in order: (result, None) or (None, error).
Outcome = tuple[Any, BaseException | None]
GroupRunner = Callable[[Session, list[Any]], list[Outcome]]


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

    def _after_fork(self) -> None:
        # Connections must not cross a fork (gunicorn preloads, then forks workers).
        if os.getpid() != self._pid:
            self.engine.dispose(close=False)
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
            raise StoreError(
                f"database unavailable: {exc.__class__.__name__}: "
                f"{str(exc.orig or exc).splitlines()[0]}"
            ) from exc
        finally:
            _read_only.reset(marker)
            session.close()

    def group_commit(self, kind: str, payload: Any, run: GroupRunner) -> Any:
        """Write `payload` in a transaction shared with the other threads of this process that
        bring a payload of the same `kind` meanwhile: one of them runs `run(session, payloads)`
        for all, in the order they came, and commits once — one turn at the write lock and one
        durable commit for the group instead of one each. Returns this payload's result once
        that commit is done; raises its own error, or the transaction's failure (then nothing
        of the group is kept)."""
        self._after_fork()
        with self._groups_lock:
            group = self._groups.get(kind)
            if group is None:
                group = self._groups[kind] = _Group()
        mine = _Work(payload)
        with group.ready:
            group.queue.append(mine)
            while group.leading and not mine.done:
                group.ready.wait()
            batch: list[_Work] = []
            if not mine.done:
                group.leading = True
                batch, group.queue = group.queue, []
        if batch:
            try:
                self._run_group(batch, run)
            finally:
                with group.ready:
                    group.leading = False
                    group.ready.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _run_group(self, batch: list[_Work], run: GroupRunner) -> None:
        try:
            with self.transaction() as session:
                outcomes = run(session, [item.payload for item in batch])
            for item, (result, error) in zip(batch, outcomes, strict=True):
                item.result, item.error = result, error
        except BaseException as exc:
            for item in batch:
                item.result, item.error = None, exc
        finally:
            for item in batch:
                item.done = True

    def grouped(self, work: Callable[[Session], T]) -> T:
        """`work(session)` by `group_commit`, each work of a group in a savepoint of its own (a
        work alone in none): a work that raises is rolled back alone and gets its error."""
        return cast(T, self.group_commit("savepoints", work, _in_savepoints))

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
            raise StoreError(
                f"database unavailable: {exc.__class__.__name__}: "
                f"{str(exc.orig or exc).splitlines()[0]}"
            ) from exc

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
        self.engine.dispose()


def _in_savepoints(session: Session, works: list[Callable[[Session], Any]]) -> list[Outcome]:
    if len(works) == 1:
        return [(works[0](session), None)]  # its error fails the transaction, and so it
    outcomes: list[Outcome] = []
    for work in works:
        try:
            with session.begin_nested():
                outcomes.append((work(session), None))
        except (OperationalError, InterfaceError):
            raise  # the transaction itself failed: the whole group fails
        except Exception as exc:
            outcomes.append((None, exc))
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
