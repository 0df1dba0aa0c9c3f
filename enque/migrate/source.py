"""Reading a live legacy database (MySQL 8 / MariaDB 10.x) with asyncmy.

Tables are streamed in primary-key order through unbuffered server-side cursors
(`SSDictCursor`), in keyset chunks (`WHERE id > last ORDER BY id LIMIT n`), so no single
query stays open for long. The driver reads a query's result as fast as the server sends it
(it does not stop reading the socket while the consumer is busy), so a whole chunk is held
in memory: a chunk is one batch by default, and the memory held is one batch (plus the
read-ahead of the load) whatever the table's size.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncmy
from asyncmy.cursors import Cursor, DictCursor, SSDictCursor
from asyncmy.errors import OperationalError, ProgrammingError

from enque.migrate.legacy_schema import change_columns, normalize_type

SCHEMES = ("mysql", "mariadb", "mysql+asyncmy")


@dataclass(frozen=True)
class SourceUrl:
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, url: str) -> SourceUrl:
        """`mysql://user:password@host:3306/database` (also `mariadb://`)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"source must be a mysql:// URL, got {parts.scheme or url!r}")
        database = urllib.parse.unquote(parts.path.lstrip("/"))
        if not database or "/" in database:
            raise ValueError("the source URL must name one database: mysql://user@host/db")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=urllib.parse.unquote(parts.username or "root"),
            password=urllib.parse.unquote(parts.password or ""),
            database=database,
        )

    def redacted(self) -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # normalised (see legacy_schema.normalize_type)
    nullable: bool
    primary: bool


def quote(identifier: str) -> str:
    """A MySQL identifier in backquotes."""
    return "`" + identifier.replace("`", "``") + "`"


async def connect(url: SourceUrl) -> asyncmy.Connection:
    """A session reading UTC (TIMESTAMP columns are converted to the session zone)."""
    conn = await asyncmy.connect(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.password,
        database=url.database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=10,
    )
    async with conn.cursor() as cur:
        await cur.execute("SET time_zone = '+00:00'")
        # A consumer may pause between batches while it writes: keep the server waiting.
        await cur.execute("SET SESSION net_write_timeout = 3600, net_read_timeout = 3600")
    return conn


class TableStream:
    """Batches of one table's rows (dicts) in primary-key order.

    `cursor` is the cursor of the chunk being read (an unbuffered `SSDictCursor`), `last_id`
    the key of the last row handed out: a resumed run passes it back as `after`.
    """

    def __init__(
        self,
        url: SourceUrl,
        table: str,
        *,
        key: str = "id",
        after: Any = None,
        where: tuple[str, tuple[Any, ...]] | None = None,
        batch_size: int = 1000,
        chunk_rows: int | None = None,
    ) -> None:
        self.url = url
        self.table = table
        self.key = key
        self.last_id = after
        self.where = where
        self.batch_size = batch_size
        self.chunk_rows = max(chunk_rows or batch_size, batch_size)
        self.cursor: Cursor | None = None
        self.rows_read = 0

    def _query(self) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        args: list[Any] = []
        if self.last_id is not None:
            clauses.append(f"{quote(self.key)} > %s")
            args.append(self.last_id)
        if self.where is not None:
            clauses.append(f"({self.where[0]})")
            args.extend(self.where[1])
        sql = f"SELECT * FROM {quote(self.table)}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY {quote(self.key)} LIMIT {int(self.chunk_rows)}"
        return sql, tuple(args)

    async def __aiter__(self) -> AsyncIterator[list[dict[str, Any]]]:
        conn = await connect(self.url)
        try:
            while True:
                sql, args = self._query()
                chunk = 0
                async with conn.cursor(SSDictCursor) as cursor:
                    self.cursor = cursor
                    await cursor.execute(sql, args)
                    while True:
                        rows = await cursor.fetchmany(self.batch_size)
                        if not rows:
                            break
                        chunk += len(rows)
                        self.rows_read += len(rows)
                        self.last_id = rows[-1][self.key]
                        yield rows
                if chunk < self.chunk_rows:
                    return
        finally:
            self.cursor = None
            conn.close()


class LegacySource:
    """One legacy database: its schema, its row counts, and streams of its tables."""

    def __init__(
        self, url: SourceUrl, *, batch_size: int = 1000, chunk_rows: int | None = None
    ) -> None:
        self.url = url
        self.batch_size = batch_size
        self.chunk_rows = chunk_rows
        self._conn: asyncmy.Connection | None = None

    async def __aenter__(self) -> LegacySource:
        self._conn = await connect(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def fetch(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        assert self._conn is not None, "use `async with LegacySource(...)`"
        async with self._conn.cursor() as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())

    async def fetch_dicts(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows as dicts (column name → value)."""
        assert self._conn is not None, "use `async with LegacySource(...)`"
        async with self._conn.cursor(DictCursor) as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())

    async def server_version(self) -> str:
        rows = await self.fetch("SELECT VERSION()")
        return str(rows[0][0])

    async def columns(self) -> dict[str, dict[str, ColumnInfo]]:
        """Every base table's columns, as information_schema reports them."""
        json_checked = await self._json_checked_columns()
        rows = await self.fetch(
            "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLUMN_KEY "
            "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
            "ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
            "WHERE c.TABLE_SCHEMA = %s AND t.TABLE_TYPE = 'BASE TABLE' "
            "ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
            (self.url.database,),
        )
        found: dict[str, dict[str, ColumnInfo]] = {}
        for table, column, column_type, nullable, key in rows:
            table, column = str(table), str(column)
            normalized = normalize_type(
                str(column_type), json_check=(table, column) in json_checked
            )
            found.setdefault(table, {})[column] = ColumnInfo(
                column, normalized, nullable == "YES", key == "PRI"
            )
        return found

    async def _json_checked_columns(self) -> set[tuple[str, str]]:
        """MariaDB stores JSON as LONGTEXT with a `json_valid` CHECK named after the column.

        (MySQL 8 has a real `json` type and no TABLE_NAME in this view: nothing to find.)
        """
        try:
            rows = await self.fetch(
                "SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = %s AND CHECK_CLAUSE LIKE 'json_valid(%%'",
                (self.url.database,),
            )
        except (OperationalError, ProgrammingError):
            return set()
        return {(str(table), str(column)) for table, column in rows}

    async def count(self, table: str, *, since: int | None = None) -> int:
        """Rows in `table`; with `since` (Unix s), only those changed at or after it."""
        where, args = self.since_filter(table, since)
        sql = f"SELECT COUNT(*) FROM {quote(table)}" + (f" WHERE {where}" if where else "")
        rows = await self.fetch(sql, args)
        return int(rows[0][0])

    @staticmethod
    def since_filter(table: str, since: int | None) -> tuple[str, tuple[Any, ...]]:
        """The WHERE clause selecting rows changed since `since` (empty without a change column)."""
        columns = change_columns(table) if since is not None else ()
        if since is None or not columns:
            return "", ()
        moment = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S")
        changed = ", ".join(quote(c) for c in columns)
        return (f"COALESCE({changed}) >= %s" if len(columns) > 1 else f"{changed} >= %s"), (moment,)

    def stream(
        self,
        table: str,
        *,
        key: str = "id",
        after: Any = None,
        since: int | None = None,
        batch_size: int | None = None,
    ) -> TableStream:
        """Rows of `table` in `key` order, in batches; `after` resumes past a key."""
        where, args = self.since_filter(table, since)
        return TableStream(
            self.url,
            table,
            key=key,
            after=after,
            where=(where, args) if where else None,
            batch_size=batch_size or self.batch_size,
            chunk_rows=self.chunk_rows,
        )
