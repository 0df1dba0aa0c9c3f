"""Engines, sessions and column conventions shared by SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import greenlet
import orjson
import uuid_utils
from sqlalchemy import JSON, BigInteger, ForeignKey, MetaData, String, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, declared_attr, mapped_column

from enque.config import Settings
from enque.core.pool import FairAsyncQueuePool
from enque.core.sqlite import dbapi as sqlite_dbapi

log = logging.getLogger(__name__)

JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")


def insert_on_conflict(session: AsyncSession, table: Any) -> Any:
    """An `INSERT` of the session's dialect, which has `ON CONFLICT` clauses."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A UUIDv7 (time-ordered) as a lowercase hyphenated string."""
    return str(uuid_utils.uuid7())


def now() -> int:
    """The current time in Unix seconds."""
    return int(time.time())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {int: BigInteger, dict[str, Any]: JSONType, list[Any]: JSONType}


class IdMixin:
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[int] = mapped_column(BigInteger, default=now, nullable=False)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now, onupdate=now, nullable=False)


class TenantMixin:
    """Every tenant row carries its workspace; queries always filter on it."""

    @declared_attr
    def workspace_id(cls) -> Mapped[str]:
        return mapped_column(
            String(36), ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True
        )


# ---------------------------------------------------------------- engines


def json_loads(value: str | bytes) -> Any:
    """JSON columns are read with orjson; like the standard library it raises TypeError for
    a value that is not text (SQLAlchemy's SQLite type then takes a bare number as it is)."""
    if not isinstance(value, str | bytes):
        raise TypeError(f"JSON text expected, got {type(value).__name__}")
    return orjson.loads(value)


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    """SQLite: WAL, foreign keys, busy timeout; writers start with BEGIN IMMEDIATE."""
    engine = create_async_engine(
        url,
        module=sqlite_dbapi(),
        poolclass=FairAsyncQueuePool,
        json_deserializer=json_loads,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        pool_pre_ping=False,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        dbapi_connection.reader = not immediate
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # sent with the transaction's first statement, in one hand-off to the driver's thread
        conn.connection.dbapi_connection.begin_with_next_statement(
            "BEGIN IMMEDIATE" if immediate else "BEGIN"
        )

    return engine


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


CONNECT_TIMEOUT = 5  # seconds to open a PostgreSQL connection


def unavailable_errors(settings: Settings) -> tuple[type[Exception], ...]:
    """Driver errors meaning PostgreSQL cannot serve now: starting up or shutting down, out of
    connections or resources, or the connection lost. asyncpg raises them unwrapped when the
    pool opens a connection (SQLAlchemy translates only the errors of statements)."""
    if settings.is_sqlite:
        return ()
    from asyncpg import exceptions as pg

    return (
        pg.OperatorInterventionError,
        pg.PostgresConnectionError,
        pg.InsufficientResourcesError,
    )


class NestedConnectionError(RuntimeError):
    """A task asked the pool for a second connection while holding one."""


def _own_frames() -> str:
    """Where in this package the caller is. The pool runs in SQLAlchemy's greenlet, whose
    parent is suspended in the caller's code."""
    current = greenlet.getcurrent()
    frame = current.parent.gr_frame if current.parent is not None else sys._getframe()
    package = str(Path(__file__).resolve().parents[1])
    lines = []
    while frame is not None:
        if frame.f_code.co_filename.startswith(package):
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}\n")
        frame = frame.f_back
    return "".join(reversed(lines))


class ConnectionHolders:
    """Which task holds which pooled connection.

    A task that holds a connection and asks for another waits forever once every connection
    is held by such tasks (a burst of requests is enough), so it is a bug: the work must go on
    the session it already has. Outside production it raises; in production it is logged.
    """

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self._held: dict[int, asyncio.Task[Any]] = {}  # connection record → task

    def watch(self, engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "checkout", self._checkout)
        event.listen(engine.sync_engine, "checkin", self._checkin)

    def _checkout(self, _dbapi: Any, record: Any, _proxy: Any) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop: a synchronous caller
            return
        if task is None:
            return
        if task in self._held.values():
            message = (
                "a task took a second database connection while holding one; under load every "
                "connection can end up held by tasks waiting for another. Use the session the "
                "task already has.\n" + _own_frames()
            )
            if self.strict:
                raise NestedConnectionError(message)
            log.error(message)
        self._held[id(record)] = task

    def _checkin(self, _dbapi: Any, record: Any) -> None:
        self._held.pop(id(record), None)


class Database:
    """The engines of one process. On SQLite writes go through one connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        url = settings.async_database_url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            _ensure_sqlite_dir(url)
            self.engine = _sqlite_engine(url, immediate=False, pool_size=settings.db_pool_size)
            self.write_engine = _sqlite_engine(url, immediate=True, pool_size=1)
        else:
            self.engine = create_async_engine(
                url,
                poolclass=FairAsyncQueuePool,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_pool_size,
                pool_pre_ping=True,
                pool_recycle=1800,
                json_deserializer=json_loads,
                # a database host that does not answer fails a request in seconds (503),
                # not after asyncpg's default minute
                connect_args={"timeout": CONNECT_TIMEOUT},
            )
            self.write_engine = self.engine
        self.holders = ConnectionHolders(strict=not settings.is_production)
        self.holders.watch(self.engine)
        if self.write_engine is not self.engine:
            self.holders.watch(self.write_engine)
        self._read = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False, autoflush=False)

    def attach(self, runtime: Any) -> None:
        """Sessions opened from now on carry `runtime` in `session.info`."""
        self._read.configure(info={"runtime": runtime})
        self._write.configure(info={"runtime": runtime})

    def session(self, *, write: bool = True) -> AsyncSession:
        """A new session; `write=False` may read concurrently with writers on SQLite."""
        return (self._write if write else self._read)()

    @asynccontextmanager
    async def reading(self, session: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        """`session` when the caller holds one (a task keeps to one pooled connection), else a
        read session of its own."""
        if session is not None:
            yield session
            return
        async with self.session(write=False) as own:
            yield own

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write session whose work commits (and runs after-commit hooks) on exit."""
        async with self.session(write=True) as session, unit(session):
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()


# ---------------------------------------------------------------- unit of work

AfterCommit = Callable[[], Awaitable[None]]


class _Commits:
    """How many transactions sessions of this process have committed."""

    count = 0


@event.listens_for(Session, "after_commit")
def _counted(_session: Session) -> None:
    _Commits.count += 1


def commits() -> int:
    """Transactions committed by this process so far: a fact read from the database and kept
    is as fresh as a read while this has not moved (other processes aside)."""
    return _Commits.count


def per_commit(session: AsyncSession, key: str, factory: Callable[[], Any]) -> Any:
    """The value under `key` for the outermost unit of work on this session, made by
    `factory` on first use and forgotten when that unit commits or rolls back."""
    values: dict[str, Any] = session.info.setdefault("per_commit", {})
    if key not in values:
        values[key] = factory()
    return values[key]


def on_commit(session: AsyncSession, hook: AfterCommit, *, first: bool = False) -> None:
    """Run `hook` once the outermost unit of work on this session has committed (`first`:
    before the hooks already queued)."""
    hooks: list[AfterCommit] = session.info.setdefault("after_commit", [])
    if first:
        hooks.insert(0, hook)
    else:
        hooks.append(hook)


@asynccontextmanager
async def unit(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """One transaction: nested units join the outer one; the outermost commits, then runs hooks.

    Service functions wrap their work in `unit(session)`, so a route, an email ingest or an
    automation can call them alone (they commit) or together (one transaction).
    """
    depth = session.info.get("unit_depth", 0)
    session.info["unit_depth"] = depth + 1
    try:
        yield session
        if depth == 0:
            await session.commit()
    except BaseException:
        if depth == 0:
            session.info.pop("after_commit", None)
            session.info.pop("per_commit", None)
            await session.rollback()
        raise
    finally:
        session.info["unit_depth"] = depth
    if depth == 0:
        session.info.pop("per_commit", None)
        hooks: list[AfterCommit] = session.info.pop("after_commit", [])
        for hook in hooks:
            try:
                await hook()
            except Exception:
                log.exception("after-commit hook failed")
