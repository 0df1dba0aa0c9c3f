"""One Alembic history builds the models' schema on both engines, and goes down and up again."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from enque import domains
from enque.core.db import Base
from enque.core.migrate import alembic_config, downgrade, include_object, script_heads, upgrade
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


def test_start_up_reads_the_same_heads_as_alembic(tmp_path: Path) -> None:
    """Start-up skips Alembic by reading the revision files itself; it must agree with Alembic."""
    settings = settings_from({"database_url": f"sqlite:///{tmp_path / 'heads.db'}"})
    script = ScriptDirectory.from_config(alembic_config(settings))
    assert script_heads() == set(script.get_heads())
    assert len(script_heads()) == 1
