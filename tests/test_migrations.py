"""One Alembic history builds the models' schema on both engines, and goes down and up again."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from enque import domains
from enque.core.db import Base
from enque.core.migrate import downgrade, include_object, upgrade
from tests.conftest import BACKEND, make_database_url, settings_from

pytestmark = pytest.mark.filterwarnings(
    "ignore:autogenerate skipping metadata-specified expression-based index"
)


async def _differences(url: str) -> list[object]:
    domains.load_models()
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:

            def compare(sync_connection):  # type: ignore[no-untyped-def]
                context = MigrationContext.configure(
                    sync_connection,
                    opts={"compare_type": True, "include_object": include_object},
                )
                return compare_metadata(context, Base.metadata)

            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def test_migrated_schema_matches_models_then_down_and_up(
    base_env: dict[str, str], data_dir: Path, worker_id_suffix: str
):
    url, cleanup = make_database_url(
        BACKEND, data_dir, f"enque_mig_{worker_id_suffix}_{secrets.token_hex(3)}"
    )
    try:
        settings = settings_from(base_env, database_url=url)
        await upgrade(settings)
        assert await _differences(settings.async_database_url) == []
        await downgrade(settings, "base")
        await upgrade(settings)
        assert await _differences(settings.async_database_url) == []
    finally:
        cleanup()
