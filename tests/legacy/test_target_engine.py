"""The target engine's memory: SQLite's page cache has one bound for all its connections."""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import text

from enque.migrate.command import SQLITE_CACHE_KIB, target_engine


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
