"""Deterministic UUIDv7 ids for legacy rows, and the persistent id map (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from enque.config import Settings
from enque.core.db import Database
from enque.migrate.idmap import TABLE_CODES, IdMap, IdSpace
from enque.migrate.legacy_schema import TABLES
from enque.migrate.models import LegacyIdMap
from tests.support.api import unique

SPACE = IdSpace(uuid.UUID("0190f0e2-1111-4222-8333-444455556666"), 1_732_000_000_000)


def test_ids_are_uuidv7_and_deterministic() -> None:
    value = uuid.UUID(SPACE.new_id("tickets", 1042))
    assert value.version == 7 and value.variant == uuid.RFC_4122
    assert value.int >> 80 == SPACE.epoch_ms
    assert SPACE.new_id("tickets", 1042) == SPACE.new_id("tickets", "1042") == str(value)
    other = IdSpace(uuid.UUID("0190f0e2-1111-4222-8333-444455556667"), SPACE.epoch_ms)
    assert other.new_id("tickets", 1042) != str(value)
    assert SPACE.maybe("agents", None) is None


def test_ids_are_unique_and_ordered_per_table() -> None:
    ids = [SPACE.new_id(table, n) for table in TABLES for n in range(1, 300)]
    assert len(set(ids)) == len(ids)
    tickets = [SPACE.new_id("tickets", n) for n in (1, 2, 10, 1042, 2**31 - 1)]
    assert tickets == sorted(tickets)
    composite = {SPACE.new_id("comments:inline_image", f"7:{n}@legacy.enque") for n in range(500)}
    assert len(composite) == 500
    assert all(uuid.UUID(i).version == 7 for i in composite)


def test_every_legacy_table_has_a_code() -> None:
    assert set(TABLES) <= set(TABLE_CODES)
    assert len(set(TABLE_CODES.values())) == len(TABLE_CODES)
    assert all(0 < code < 4096 for code in TABLE_CODES.values())


@pytest.fixture
async def database(migrated: Settings) -> AsyncIterator[Database]:
    db = Database(migrated)
    yield db
    await db.dispose()


async def test_map_is_persistent_and_reruns_map_the_same(database: Database) -> None:
    source = f"127.0.0.1:3306/{unique('legacy')}"
    async with database.transaction() as session:
        first = await IdMap.open(session, source)
        assigned = await first.assign(session, "tickets", [1, 2, 1042])
        assert assigned == {str(n): first.new_id("tickets", n) for n in (1, 2, 1042)}
    async with database.transaction() as session:
        again = await IdMap.open(session, source)
        assert again.migration.id == first.migration.id
        assert await again.assign(session, "tickets", [1042, 7]) == {
            "1042": assigned["1042"],
            "7": again.new_id("tickets", 7),
        }
        assert await again.lookup(session, "tickets", [1, 7, 99]) == {
            "1": assigned["1"],
            "7": again.new_id("tickets", 7),
        }
        rows = await session.scalar(
            select(func.count())
            .select_from(LegacyIdMap)
            .where(LegacyIdMap.migration_id == again.migration.id)
        )
        assert rows == 4
    async with database.transaction() as session:
        other = await IdMap.open(session, source + "-other")
        assert other.new_id("tickets", 1042) != assigned["1042"]


async def test_recorded_mapping_wins(database: Database) -> None:
    source = f"127.0.0.1:3306/{unique('legacy')}"
    async with database.transaction() as session:
        ids = await IdMap.open(session, source)
        session.add(
            LegacyIdMap(
                migration_id=ids.migration.id,
                source_table="users:original_sender",
                old_id="1:dana@example.com",
                new_id="0190f0e2-0000-7000-8000-000000000001",
            )
        )
        await session.flush()
        mapping = await ids.assign(session, "users:original_sender", ["1:dana@example.com"])
        assert mapping == {"1:dana@example.com": "0190f0e2-0000-7000-8000-000000000001"}
