"""SQLite through aiosqlite with one hand-off to its thread per statement.

SQLAlchemy's aiosqlite adapter awaits four calls on the connection's worker thread for every
statement (open a cursor, execute, fetch, close), and each call is a round trip between the
event loop and that thread. The cursor here runs the four as one call, so a statement costs one
round trip, and a transaction's `BEGIN` travels with its first statement.

A session's close costs no round trip either. The thread reports whether a transaction is open
after each statement, so the pool's second `ROLLBACK` on check-in (after the session ended its
transaction) is skipped; and a reader's `ROLLBACK`, which only ends its snapshot, is queued on
the connection's thread ahead of whatever the connection's next user runs, without waiting for
it. Each round trip is two passes through a busy event loop, and the pooled connection stays
held until the close returns: under load the next request waited for it.
Everything else (errors, server-side cursors, the connection) is SQLAlchemy's.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

log = logging.getLogger(__name__)

# description, lastrowid, rowcount, rows, whether a transaction is open after the statement
Outcome = tuple[Any, Any, int, list[Any], bool]


def _run(
    conn: sqlite3.Connection, begin: str | None, operation: str, parameters: Any, many: bool
) -> Outcome:
    """On the connection's thread: the transaction's start if pending, then the whole
    statement, rows included."""
    if begin is not None:
        conn.execute(begin)
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        if cursor.description:
            return cursor.description, -1, -1, cursor.fetchall(), conn.in_transaction
        return None, cursor.lastrowid, cursor.rowcount, [], conn.in_transaction
    finally:
        cursor.close()


def _end_snapshot(conn: sqlite3.Connection) -> None:
    """On the connection's thread: a reader's `ROLLBACK`, which nobody waits for."""
    try:
        conn.rollback()
    except sqlite3.Error:  # the next statement's BEGIN fails and its session rolls back again
        log.exception("ending a read transaction failed")


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def _call(self, operation: str, parameters: Any, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        adapted: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
        begin = adapted.take_pending_begin()
        adapted.in_transaction = True  # until the thread says otherwise (a failed statement)
        try:
            outcome: Outcome = self.await_(
                connection._execute(_run, connection._conn, begin, operation, parameters, many)
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self.description, self.lastrowid, self.rowcount, rows, adapted.in_transaction = outcome
        self._rows = deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._call(operation, parameters, False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        self._call(operation, seq_of_parameters, True)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_pending_begin", "in_transaction", "reader")

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._pending_begin: str | None = None
        # as the driver's thread last reported it; True when unknown (statements that run
        # outside `OneHopCursor`)
        self.in_transaction = False
        # a reader's ROLLBACK only ends its snapshot: it is queued on the connection's thread,
        # ahead of whatever the connection's next user runs, and not waited for
        self.reader = False

    def begin_with_next_statement(self, begin: str) -> None:
        """Start a transaction (`BEGIN …`) in the same hand-off as its first statement."""
        self._pending_begin = begin

    def take_pending_begin(self) -> str | None:
        begin, self._pending_begin = self._pending_begin, None
        return begin

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        if server_side:  # rows stream from the thread as they are fetched
            self.in_transaction = True
            begin = self.take_pending_begin()
            if begin is not None:
                self.execute(begin)
            return super().cursor(server_side=True)
        return OneHopCursor(self)

    def execute(self, *args: Any, **kw: Any) -> Any:
        self.in_transaction = True
        return super().execute(*args, **kw)

    def commit(self) -> None:
        # a pending BEGIN means nothing ran: nothing to commit
        if self.take_pending_begin() is None and self.in_transaction:
            super().commit()
            self.in_transaction = False

    def rollback(self) -> None:
        if self.take_pending_begin() is not None or not self.in_transaction:
            return
        if self.reader:
            connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
            connection._tx.put_nowait((None, partial(_end_snapshot, connection._conn)))
        else:
            super().rollback()
        self.in_transaction = False


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module the SQLite engines are given (`create_async_engine(module=…)`)."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


def dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)
