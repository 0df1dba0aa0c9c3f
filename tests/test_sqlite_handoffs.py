"""SQLite statements and transaction ends cost as few waits for the driver's thread as they can:
every wait is a round trip through a busy event loop, and a pooled connection is held until the
session's close returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text

from enque.core.db import Database
from tests.conftest import settings_from


@pytest.fixture
async def db(base_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Database]:
    """Engines on a new SQLite file with one read connection, so sessions share it."""
    settings = settings_from(
        base_env, database_url=f"sqlite:///{tmp_path / 'handoffs.db'}", db_pool_size=1
    )
    database = Database(settings)
    async with database.session() as session:
        await session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))
        await session.commit()
    yield database
    await database.dispose()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The calls the event loop waits for on a connection's thread."""
    seen: list[Any] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(fn)
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def count_notes(db: Database) -> int:
    async with db.session(write=False) as session:
        return int((await session.execute(text("SELECT COUNT(*) FROM notes"))).scalar_one())


async def test_a_read_waits_for_its_statement_only(db: Database, waits: list[Any]):
    await count_notes(db)  # the connection is opened
    waits.clear()
    await count_notes(db)
    assert len(waits) == 1  # BEGIN travels with the statement; the ROLLBACK is not waited for


async def test_a_write_waits_for_its_statement_and_commit_only(db: Database, waits: list[Any]):
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO notes DEFAULT VALUES"))
    waits.clear()
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO notes DEFAULT VALUES"))
    assert len(waits) == 2  # no second ROLLBACK when the pool takes the connection back


async def test_a_reader_sees_what_was_committed_after_its_last_read(db: Database):
    assert await count_notes(db) == 0
    await add_note(db)
    assert await count_notes(db) == 1  # the same pooled connection: its snapshot was ended


async def add_note(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO notes DEFAULT VALUES"))


async def test_a_reader_keeps_one_snapshot_until_it_closes(db: Database):
    async with db.session(write=False) as reader:
        before = (await reader.execute(text("SELECT COUNT(*) FROM notes"))).scalar_one()
        await asyncio.create_task(add_note(db))  # another task: a connection of its own
        again = (await reader.execute(text("SELECT COUNT(*) FROM notes"))).scalar_one()
    assert before == again == 0


async def test_a_failed_statement_still_ends_its_transaction(db: Database):
    with pytest.raises(Exception, match="no such table"):
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO notes DEFAULT VALUES"))
            await session.execute(text("SELECT * FROM missing"))
    await add_note(db)  # BEGIN IMMEDIATE again on the one write connection
    assert await count_notes(db) == 1
