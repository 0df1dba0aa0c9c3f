"""`enque migrate legacy`: the steps in order, each recording into one report."""

from __future__ import annotations

import contextlib
import gc
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from enque.migrate import files
from enque.migrate.models import LegacyMigration
from enque.migrate.plan import check_secrets, run_plan
from enque.migrate.report import Report
from enque.migrate.source import LegacySource, SourceUrl
from enque.migrate.transform import LegacySecrets


@dataclass(frozen=True)
class LegacyOptions:
    source_url: str
    storage_from: str | None = None
    target: str | None = None
    storage_to: str | None = None
    legacy_key: str | None = None
    dry_run: bool = False
    since: int | None = None
    report_path: Path | None = None
    target_url: str | None = None  # the unredacted target database (None: plan only)
    storage_to_url: str | None = None  # the unredacted target storage
    verify_only: bool = False
    batch_size: int = 1000
    quiet: bool = False
    encryption_key: str | None = None  # the target's ENCRYPTION_KEY (default: its settings)


# Allocations of container objects between two collections of the youngest generation while
# the migration moves rows (the interpreter's default is 700): every legacy row makes dozens.
GC_YOUNG_THRESHOLD = 20_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """The garbage collector, while rows are moved, started less often and walking only what
    was made since: the objects alive before (modules, the models' metadata, settings) are
    frozen out of its collections, which walked them all every time. Restored after (left
    as it is when the caller froze objects itself: `gc.unfreeze` thaws them all)."""
    threshold, ours = gc.get_threshold(), gc.get_freeze_count() == 0
    if ours:
        gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if ours:
            gc.unfreeze()


def parse_since(value: str) -> int:
    """`--since`: Unix seconds, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"--since {value!r}: give Unix seconds or an ISO date/time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


async def run_legacy(options: LegacyOptions) -> Report:
    """Run the migration steps against the source and return their report.

    Steps: plan (schemas compared, rows counted, legacy secrets checked against the key,
    the legacy file store reached); then, given a target and no plan error: load (resumed
    from the checkpoints of an earlier run) and verify. `verify_only` skips the load;
    `dry_run` stops after the plan.
    """
    url = SourceUrl.parse(options.source_url)
    report = Report(
        source=url.redacted(),
        target=options.target,
        dry_run=options.dry_run,
        since=options.since,
    )
    if options.storage_to:
        report.facts["storage_to"] = options.storage_to
    async with LegacySource(url) as source:
        diff = await run_plan(source, report, since=options.since)
        if "microsoft_tokens" not in diff.missing_tables:
            await check_secrets(source, LegacySecrets(options.legacy_key), report)
    store_from = None
    if options.storage_from:
        try:
            store_from = files.open_store(options.storage_from)
            await files.reachable(store_from)
            report.facts["storage_from"] = "reachable"
        except Exception as exc:
            report.issue("storage_unreachable", f"{type(exc).__name__}: {exc}", level="error")
    if (
        options.target_url
        and options.storage_to_url
        and not options.dry_run
        and not report.exit_code
    ):
        await _move(options, url, report, store_from)
    report.finish()
    if options.report_path is not None:
        report.write_json(options.report_path)
    return report


def async_url(url: str) -> str:
    """A database URL with the async driver (as Settings.async_database_url)."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


# Connections to the target at most (the pool's size and overflow), and SQLite's page cache
# for all of them together: each connection keeps its own cache, filled as the target is
# read, so the total is split between them and does not grow with the target's size.
TARGET_CONNECTIONS = (2, 2)
SQLITE_CACHE_KIB = 64 * 1024


def target_engine(url: str) -> AsyncEngine:
    """The target database; on SQLite with foreign keys on, the WAL journal and a bounded
    page cache (`SQLITE_CACHE_KIB` for all connections)."""
    pool_size, max_overflow = TARGET_CONNECTIONS
    cache_kib = SQLITE_CACHE_KIB // (pool_size + max_overflow)
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        json_serializer=lambda value: orjson.dumps(value).decode(),
        json_deserializer=orjson.loads,
    )
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA cache_size=-{cache_kib}")
            cursor.close()

    return engine


async def _move(
    options: LegacyOptions, url: SourceUrl, report: Report, store_from: Any | None
) -> None:
    """Load (unless verify-only or dry run) and verify, against the target."""
    from enque import domains
    from enque.config import Settings
    from enque.core.crypto import Cipher
    from enque.core.migrate import upgrade
    from enque.migrate.idmap import IdMap
    from enque.migrate.load import load
    from enque.migrate.verify import verify

    assert options.target_url is not None and options.storage_to_url is not None
    domains.load_models()
    settings = Settings(database_url=options.target_url)
    if options.encryption_key:
        settings = settings.model_copy(update={"encryption_key": options.encryption_key})
    # secrets are sealed with the key the server reads them with (ENCRYPTION_KEY)
    cipher = Cipher(
        settings.resolved_encryption_key(),
        [k for k in settings.encryption_keys_old.split(",") if k.strip()],
    )
    secrets = LegacySecrets(options.legacy_key)
    if not options.verify_only:
        await upgrade(settings)
    engine = target_engine(options.target_url)
    try:
        store_to = files.open_target(options.storage_to_url)
        async with AsyncSession(engine) as session:
            idmap = await IdMap.open(session, f"{url.host}:{url.port}/{url.database}")
            migration_id, space = idmap.migration.id, idmap.space
            if options.verify_only:
                await session.rollback()
            else:
                await session.commit()
        with fewer_collections():
            async with LegacySource(url, batch_size=options.batch_size) as source:
                if not options.verify_only:
                    await load(
                        source,
                        engine,
                        space,
                        migration_id,
                        report,
                        store_from=store_from,
                        store_to=store_to,
                        cipher=cipher,
                        secrets=secrets,
                        since=options.since,
                        batch_size=options.batch_size,
                        quiet=options.quiet,
                    )
                    async with engine.begin() as conn:
                        await conn.execute(
                            update(LegacyMigration)
                            .where(LegacyMigration.id == migration_id)
                            .values(last_completed_at=int(time.time()), last_since=options.since)
                        )
                await verify(
                    source,
                    engine,
                    space,
                    report,
                    store_from=store_from,
                    store_to=store_to,
                    cipher=cipher,
                    secrets=secrets,
                    batch_size=options.batch_size,
                )
    finally:
        await engine.dispose()
