"""The target engine's memory (SQLite's page cache has one bound for all its connections) and
the batch inserts."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import JSON, Column, Integer, MetaData, Table, Text, text

from enque.migrate.command import SQLITE_CACHE_KIB, target_engine
from enque.migrate.load import insert_rows, insert_tuples


async def test_sqlite_page_cache_is_one_total_for_the_whole_pool(tmp_path: Path) -> None:
    engine = target_engine(f"sqlite:///{tmp_path / 'target.db'}")
    pool = engine.sync_engine.pool
    most = pool.size() + pool._max_overflow  # type: ignore[attr-defined]
    try:
        async with contextlib.AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(engine.connect()) for _ in range(most)]
            caches = [(await c.execute(text("PRAGMA cache_size"))).scalar_one() for c in conns]
    finally:
        await engine.dispose()
    # a negative cache_size is KiB: every connection the pool may open together stays
    # within the one total, however large the target grows
    assert all(kib < 0 for kib in caches)
    assert -sum(caches) <= SQLITE_CACHE_KIB


async def test_batch_inserts_write_each_rows_own_values(tmp_path: Path) -> None:
    """JSON values are encoded once per value object (rows share a recipient list parsed
    once): each row still gets its own value, and tuples go in whatever the column order of
    the compiled statement."""
    meta = MetaData()
    table = Table(
        "written",
        meta,
        Column("id", Integer, primary_key=True),
        Column("label", Text),
        Column("value", JSON),
    )
    shared = [{"name": None, "email": "a@x.example"}]
    values: list[Any] = [shared, shared, [], [], [{"email": "b@x.example"}], None, {"k": 1}]
    engine = target_engine(f"sqlite:///{tmp_path / 'target.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.create_all)
            await insert_rows(
                conn, table, [{"value": v, "id": n, "label": None} for n, v in enumerate(values)]
            )
            await insert_tuples(conn, table, ("label", "id"), [("x", 100), ("y", 101)])
            rows = (await conn.execute(text("SELECT id, label, value FROM written"))).all()
    finally:
        await engine.dispose()
    assert sorted(rows) == [
        *((n, None, orjson.dumps(v).decode()) for n, v in enumerate(values)),
        (100, "x", None),
        (101, "y", None),
    ]
