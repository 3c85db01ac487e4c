"""Statements of the signing hot path run on the database driver's cursor: the SQL that
SQLAlchemy compiles for the connection's dialect, compiled once, without its execution
machinery on every call (a context, parameter and result processing, events: about 15 µs a
statement, more than SQLite's own work).

Only for statements whose parameters and result columns are strings and integers, which the
drivers take and give as SQLAlchemy would (a Boolean comes back as 0 or 1 from SQLite, and is
read as true or false). On SQLite and PostgreSQL (psycopg); on other engines through
SQLAlchemy as usual. A driver error is raised as SQLAlchemy's own (OperationalError for a lost
connection, which is then invalidated), as the callers expect."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

_DIRECT = {"sqlite", "postgresql"}


class _Compiled:
    __slots__ = ("defaults", "positions", "row", "sql")

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        self.positions: Sequence[str] | None = compiled.positiontup
        # the values the statement binds itself (`id = 1`), not the caller's
        self.defaults: dict[str, Any] = {
            key: value for key, value in compiled.params.items() if value is not None
        }
        self.row: Any = None  # a named tuple, from the first answer's column names

    def parameters(self, params: Mapping[str, Any]) -> Any:
        merged = {**self.defaults, **params} if self.defaults else params
        if self.positions is None:
            return merged
        return tuple(merged[key] for key in self.positions)


class Direct:
    """A statement built once, run on the driver's cursor of a SQLAlchemy connection (in the
    connection's transaction)."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, conn: Connection) -> _Compiled | None:
        name = conn.dialect.name
        if name not in _DIRECT:
            return None
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = self._compiled[name] = _Compiled(self.statement, conn.dialect)
        return compiled

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Execute with `params`; the rows it returns, as named tuples."""
        compiled = self._for(conn)
        if compiled is None:
            return list(conn.execute(self.statement, dict(params)))
        cursor = _run(conn, compiled, compiled.parameters(params), many=False)
        if cursor.description is None:
            return []
        if compiled.row is None:
            compiled.row = namedtuple("Row", [column[0] for column in cursor.description])  # type: ignore[misc]
        return [compiled.row._make(row) for row in cursor.fetchall()]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Execute with `params`; its first row, or None."""
        rows = self.rows(conn, params)
        return rows[0] if rows else None

    def many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Execute once for each set of parameters (a statement that returns no rows)."""
        compiled = self._for(conn)
        if compiled is None:
            conn.execute(self.statement, [dict(p) for p in params])
            return
        _run(conn, compiled, [compiled.parameters(p) for p in params], many=True)


def _run(conn: Connection, compiled: _Compiled, parameters: Any, *, many: bool) -> Any:
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        if many:
            cursor.executemany(compiled.sql, parameters)
        else:
            cursor.execute(compiled.sql, parameters)
    except conn.dialect.loaded_dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, driver, cursor)
        error = DBAPIError.instance(
            compiled.sql,
            None,
            exc,
            conn.dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=conn.dialect,
        )
        if lost:
            conn.invalidate(error)
        raise error from exc
    return cursor
