"""Revision 0002 (full-text search) goes up, down and up again on a fresh database."""

import asyncio
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from enque.config import Settings
from enque.core.migrate import downgrade_sync, upgrade_sync
from tests.conftest import BACKEND, make_database_url, settings_from


async def search_tables(settings: Settings) -> set[str]:
    engine = create_async_engine(settings.async_database_url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return {n for n in names if n.startswith("ticket_search")} | ({"tickets"} & names)


async def test_search_revision_round_trip(
    base_env: dict[str, str], data_dir: Path, worker_id_suffix: str
):
    url, cleanup = make_database_url(BACKEND, data_dir, f"enque_search_rev_{worker_id_suffix}")
    try:
        settings = settings_from(base_env, database_url=url)
        await asyncio.to_thread(upgrade_sync, settings)
        assert "ticket_search" in await search_tables(settings)
        await asyncio.to_thread(downgrade_sync, settings, "0001")
        assert await search_tables(settings) == {"tickets"}
        await asyncio.to_thread(upgrade_sync, settings)
        assert "ticket_search" in await search_tables(settings)
    finally:
        cleanup()
