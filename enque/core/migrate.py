"""Apply and inspect the Alembic history from code (the CLI and the tests use this)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enque.config import Settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_REVISION_LINE = re.compile(r'^(down_revision|revision)\b[^=]*=\s*(?:"([^"]*)"|None)', re.M)

# Objects created by hand-written migrations (full-text search) that models do not describe.
UNMANAGED_PREFIXES = ("ticket_search", "sqlite_", "ix_tickets_search")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return not (name and name.startswith(UNMANAGED_PREFIXES))


def alembic_config(settings: Settings) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.async_database_url.replace("%", "%%"))
    return cfg


def upgrade_sync(settings: Settings, revision: str = "head") -> None:
    if settings.is_sqlite:
        path = settings.async_database_url.split(":///", 1)[-1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if revision == "head" and _applied(settings) == script_heads():
        return  # already current: no need to import Alembic, load every model, open an engine
    from alembic import command

    command.upgrade(alembic_config(settings), revision)


def script_heads() -> set[str]:
    """The head revisions of the history, read from the revision files' own declarations.

    Alembic would tell the same (a test checks it) but importing it costs a tenth of a
    second of every start.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for key, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            if key == "revision":
                revisions.add(value)
            elif value:
                parents.add(value)
    return revisions - parents


def _applied(settings: Settings) -> set[str] | None:
    """The revisions recorded in the database, read cheaply; None when that cannot be told
    (the full upgrade then decides)."""
    try:
        if settings.is_sqlite:
            path = settings.async_database_url.split(":///", 1)[-1]
            if not Path(path).exists():
                return None
            with closing(sqlite3.connect(path)) as conn:
                rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
            return {row[0] for row in rows}
        return asyncio.run(_applied_postgres(settings))
    except Exception:
        return None


async def _applied_postgres(settings: Settings) -> set[str]:
    import asyncpg

    dsn = settings.async_database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    return {row[0] for row in rows}


def downgrade_sync(settings: Settings, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(settings), revision)


async def upgrade(settings: Settings, revision: str = "head") -> None:
    """Run migrations from async code (Alembic's env runs its own loop in a thread)."""
    await asyncio.to_thread(upgrade_sync, settings, revision)


async def downgrade(settings: Settings, revision: str) -> None:
    await asyncio.to_thread(downgrade_sync, settings, revision)
