"""Reading the legacy database: URLs, streams in key order, bounded memory, `--since`."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from asyncmy.cursors import SSCursor

from enque.migrate.source import LegacySource, SourceUrl
from tests.legacy.generator import Manifest, Server, drop_database


def test_source_urls() -> None:
    url = SourceUrl.parse("mysql://en%40que:p%3Ass@db.internal:3307/old_enque")
    assert (url.user, url.password, url.host, url.port, url.database) == (
        "en@que",
        "p:ss",
        "db.internal",
        3307,
        "old_enque",
    )
    assert url.redacted() == "mysql://en@que@db.internal:3307/old_enque"
    assert SourceUrl.parse("mariadb://root@127.0.0.1/x").port == 3306
    for bad in ("postgresql://u@h/db", "mysql://u@h/", "mysql://u@h/a/b"):
        with pytest.raises(ValueError):
            SourceUrl.parse(bad)


async def test_stream_in_key_order_and_resume(legacy: Manifest) -> None:
    async with LegacySource(SourceUrl.parse(legacy.url), batch_size=7, chunk_rows=20) as source:
        total = await source.count("comments")
        stream = source.stream("comments")
        ids = [row["id"] async for rows in stream for row in rows]
        assert len(ids) == total == stream.rows_read
        assert ids == sorted(ids) and len(set(ids)) == total
        assert stream.last_id == ids[-1]
        resumed = [
            row["id"] async for rows in source.stream("comments", after=ids[99]) for row in rows
        ]
        assert resumed == ids[100:]


async def test_rows_keep_legacy_values(legacy: Manifest) -> None:
    async with LegacySource(SourceUrl.parse(legacy.url)) as source:
        rows = {r["id"]: r async for batch in source.stream("ticket_attachments") for r in batch}
    blob = rows[legacy.edge["attachment_blob"]]
    assert isinstance(blob["content_bytes"], bytes) and "😀".encode() in blob["content_bytes"]
    assert rows[legacy.edge["attachment_zero_date"]]["created_at"] == "0000-00-00 00:00:00"


async def test_since_counts_changed_rows(legacy: Manifest) -> None:
    async with LegacySource(SourceUrl.parse(legacy.url)) as source:
        everything = await source.count("tickets")
        cut = 1641196800 + 86_400 * 350  # half way through the generated history
        changed = await source.count("tickets", since=cut)
        streamed = [r async for rows in source.stream("tickets", since=cut) for r in rows]
        assert 0 < changed < everything and len(streamed) == changed
        # a table without a change column is copied whole
        assert await source.count("ticket_bodies", since=cut) == await source.count("ticket_bodies")


@pytest.fixture
async def big_table(mariadb: Server, worker_id_suffix: str) -> AsyncIterator[str]:
    """40 MB in one table: 32,768 rows of 1,200 bytes."""
    name = f"enque_legacy_big_{worker_id_suffix}_{os.getpid()}"
    conn = await mariadb.connect()
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            await cur.execute(f"CREATE DATABASE `{name}`")
            await cur.execute(
                f"CREATE TABLE `{name}`.comments (id INT AUTO_INCREMENT PRIMARY KEY, content TEXT)"
            )
            await cur.execute(f"INSERT INTO `{name}`.comments (content) VALUES (REPEAT('x', 1200))")
            for _ in range(15):
                await cur.execute(
                    f"INSERT INTO `{name}`.comments (content) SELECT content FROM `{name}`.comments"
                )
    finally:
        conn.close()
    yield mariadb.url(name)
    await drop_database(mariadb, name)


async def test_stream_memory_is_bounded_by_the_batch(big_table: str) -> None:
    async with LegacySource(
        SourceUrl.parse(big_table), batch_size=500, chunk_rows=10_000
    ) as source:
        stream = source.stream("comments")
        cursor_types = set()
        read = 0
        tracemalloc.start()
        try:
            async for rows in stream:
                cursor_types.add(type(stream.cursor))
                read += sum(len(r["content"]) for r in rows)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert all(issubclass(kind, SSCursor) for kind in cursor_types) and cursor_types
    assert read == 32_768 * 1200
    assert peak < 8_000_000, f"peak {peak} bytes while streaming {read} bytes"


async def test_a_slow_reader_holds_one_batch_of_the_source(big_table: str) -> None:
    """The driver reads a query's whole result as fast as the server sends it (no flow
    control), so a query asks for one batch: what a slow consumer holds stays one batch."""
    async with LegacySource(SourceUrl.parse(big_table), batch_size=500) as source:
        stream = source.stream("comments")
        read = 0
        tracemalloc.start()
        try:
            async for rows in stream:
                read += sum(len(r["content"]) for r in rows)
                await asyncio.sleep(0.005)  # the load transforms and writes meanwhile
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert read == 32_768 * 1200
    assert peak < 8_000_000, f"peak {peak} bytes while streaming {read} bytes"
