"""Apply and inspect the Alembic history from code (the CLI and the tests use this)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from enque.config import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

# Objects created by hand-written migrations (full-text search) that models do not describe.
UNMANAGED_PREFIXES = ("ticket_search", "sqlite_", "ix_tickets_search")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return not (name and name.startswith(UNMANAGED_PREFIXES))


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.async_database_url.replace("%", "%%"))
    return cfg


def upgrade_sync(settings: Settings, revision: str = "head") -> None:
    if settings.is_sqlite:
        path = settings.async_database_url.split(":///", 1)[-1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), revision)


def downgrade_sync(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


async def upgrade(settings: Settings, revision: str = "head") -> None:
    """Run migrations from async code (Alembic's env runs its own loop in a thread)."""
    await asyncio.to_thread(upgrade_sync, settings, revision)


async def downgrade(settings: Settings, revision: str) -> None:
    await asyncio.to_thread(downgrade_sync, settings, revision)
