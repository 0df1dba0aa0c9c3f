"""The load step: legacy rows, transformed, written into the new tables in batches.

Each migrated source table has a `TableSpec` (spec.py; the specs live in people.py, mail.py,
conversations.py, preferences.py and rules.py) turning one batch of legacy rows into target
rows (`Batch`). The same specs serve the verify step, which compares what they produce with
what the target holds. A batch is written in one transaction together with its
`legacy_id_map` entries and the table's checkpoint (`legacy_checkpoints.last_id`), so a run
killed at any point continues after the last committed batch; ids are derived (see
idmap.py) and every insert is `ON CONFLICT DO NOTHING`, so a batch written twice changes
nothing. Files are written to the target storage before their transaction commits (same key
on a re-run, so a crash leaves nothing behind that the next run does not overwrite).
Secrets (columns declared with `encrypted_column()`) arrive as plain dicts and are sealed
with the target's key here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from enque.activity.models import Activity
from enque.agents.models import Agent, AgentWorkspace
from enque.attachments.models import Attachment
from enque.automations.models import Automation
from enque.canned.models import CannedReply
from enque.categories.models import Category
from enque.comments.models import Comment
from enque.core.crypto import Cipher
from enque.core.secrets import ENCRYPTED, context_for
from enque.customers.models import Company, User
from enque.mailboxes.models import EmailMessage, Mailbox, MicrosoftApp
from enque.migrate import (
    audit,
    conversations,
    files,
    mail,
    people,
    preferences,
    rules,
    scheduling,
)
from enque.migrate.idmap import IdSpace
from enque.migrate.legacy_schema import LOAD_ORDER
from enque.migrate.models import LegacyCheckpoint, LegacyFile, LegacyIdMap
from enque.migrate.people import legacy_agents
from enque.migrate.report import Report, RowContext
from enque.migrate.source import LegacySource
from enque.migrate.spec import Batch, Env, FileJob, TableSpec, insert, table_of, transform_batch
from enque.migrate.transform import LegacySecrets
from enque.notifications.models import NotificationSetting
from enque.scheduled_replies.models import ScheduledReply
from enque.signatures.models import WorkspaceSignature
from enque.teams.models import Team, TeamMember
from enque.tickets.models import Ticket, TicketBody
from enque.workspaces.models import Workspace

_ALL = {
    spec.source: spec
    for spec in (
        *people.SPECS,
        *mail.SPECS,
        *conversations.SPECS,
        *scheduling.SPECS,
        *preferences.SPECS,
        *rules.SPECS,
        *audit.SPECS,
    )
}
# The source tables this step migrates, in load order (parents first).
SPECS: dict[str, TableSpec] = {name: _ALL[name] for name in LOAD_ORDER if name in _ALL}
MIGRATED: tuple[str, ...] = tuple(SPECS)

# Target tables in the order a batch writes them (parents first).
WRITE_ORDER: tuple[Table, ...] = tuple(
    table_of(model)
    for model in (
        Workspace,
        Agent,
        AgentWorkspace,
        Team,
        TeamMember,
        Company,
        User,
        Category,
        MicrosoftApp,
        Mailbox,
        Ticket,
        TicketBody,
        Comment,
        EmailMessage,
        LegacyFile,
        Attachment,
        ScheduledReply,
        CannedReply,
        WorkspaceSignature,
        NotificationSetting,
        Automation,
        Activity,
    )
)


def sealed_columns(table: Table) -> list[str]:
    """The columns of `table` that hold secrets (encrypted with the target's key)."""
    return [c.name for c in table.columns if c.info.get(ENCRYPTED)]


def seal_rows(cipher: Cipher, table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` with their secret columns (plain dicts) encrypted, bound to their row."""
    columns = sealed_columns(table)
    if not columns:
        return rows
    sealed = []
    for row in rows:
        row = dict(row)
        for column in columns:
            if isinstance(row.get(column), dict):
                row[column] = cipher.encrypt(
                    orjson.dumps(row[column]).decode(), context_for(table.name, column, row["id"])
                )
        sealed.append(row)
    return sealed


# ---------------------------------------------------------------- writing


_STATEMENTS: dict[tuple[str, str, tuple[str, ...], bool], tuple[str, tuple[str, ...]]] = {}


def _statement(
    conn: AsyncConnection, table: Table, columns: tuple[str, ...], update: bool
) -> tuple[str, tuple[str, ...]]:
    """The dialect's INSERT of `columns` (ON CONFLICT DO NOTHING, or DO UPDATE on the id with
    `update`), compiled once, and the order of its parameters."""
    key = (conn.dialect.name, table.name, columns, update)
    if key not in _STATEMENTS:
        stmt = insert(conn, table)
        if update:
            stmt = stmt.on_conflict_do_update(
                index_elements=["id"], set_={c: stmt.excluded[c] for c in columns if c != "id"}
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        compiled = stmt.compile(dialect=conn.dialect, column_keys=list(columns))
        _STATEMENTS[key] = (compiled.string, tuple(compiled.positiontup or ()))
    return _STATEMENTS[key]


async def insert_rows(
    conn: AsyncConnection, table: Table, rows: list[dict[str, Any]], *, update: bool = False
) -> None:
    """Insert `rows` (same keys each) with one prepared statement for all.

    Values go to the driver as they are (the rows hold plain values), JSON columns encoded
    here the way their type would (None as JSON `null`): the statement's parameter
    processing, done row by row, costs more than the insert itself."""
    columns = tuple(rows[0])
    sql, order = _statement(conn, table, columns, update)
    values = itemgetter(*order) if len(order) > 1 else (lambda row: (row[order[0]],))
    encoded = [i for i, c in enumerate(order) if isinstance(table.c[c].type, JSON)]
    params: list[Any] = [values(row) for row in rows]
    if encoded:
        # one encoding per value object: rows share theirs (a recipient list parsed once is
        # on every row that names it), and every row is alive until the insert is done
        texts: dict[int, str] = {}
        for n, found in enumerate(params):
            found = list(found)
            for i in encoded:
                value = found[i]
                text = texts.get(id(value))
                if text is None:
                    text = texts[id(value)] = orjson.dumps(value).decode()
                found[i] = text
            params[n] = tuple(found)
    await conn.exec_driver_sql(sql, params)


async def insert_tuples(
    conn: AsyncConnection, table: Table, columns: tuple[str, ...], params: list[tuple[Any, ...]]
) -> None:
    """Insert rows given as tuples of `columns` (no JSON column), existing keys left alone."""
    sql, order = _statement(conn, table, columns, False)
    if order != columns:
        params = list(map(itemgetter(*(columns.index(c) for c in order)), params))
    await conn.exec_driver_sql(sql, params)


_ID_MAP_COLUMNS = ("migration_id", "source_table", "old_id", "new_id")


async def write_batch(
    conn: AsyncConnection,
    batch: Batch,
    *,
    migration_id: str,
    update: bool,
    cipher: Cipher | None = None,
) -> None:
    """Insert a batch's rows (existing ids left alone, or updated with `update`)."""
    for table in WRITE_ORDER:
        rows = batch.rows.get(table.name)
        if not rows:
            continue
        if cipher is not None:
            rows = seal_rows(cipher, table, rows)
        await insert_rows(conn, table, rows, update=update)
    if batch.idmap:
        await insert_tuples(
            conn,
            table_of(LegacyIdMap),
            _ID_MAP_COLUMNS,
            [(migration_id, t, o, n) for t, o, n in batch.idmap],
        )


async def attachment_rows(
    conn: AsyncConnection, copied: list[dict[str, Any]], batch: Batch
) -> list[dict[str, Any]]:
    """The copied files of comments as attachments of the new system, so the API lists them
    with their thread. Files of no comment stay in `legacy_files` only (the orphan sweep would
    remove an attachment linked to nothing)."""
    wanted = [row for row in copied if row.get("comment_id")]
    if not wanted:
        return []
    ticket_of = {c["id"]: c["ticket_id"] for c in batch.rows.get(Comment.__tablename__, [])}
    missing = {r["comment_id"] for r in wanted} - ticket_of.keys()
    if missing:
        comments = table_of(Comment)
        found = await conn.execute(
            select(comments.c.id, comments.c.ticket_id).where(comments.c.id.in_(missing))
        )
        ticket_of.update({cid: tid for cid, tid in found.all()})
    rows = []
    for row in wanted:
        ticket_id = ticket_of.get(row["comment_id"])
        if ticket_id is None:
            continue
        rows.append(
            {
                "id": row["id"],
                "workspace_id": row["workspace_id"],
                "ticket_id": ticket_id,
                "comment_id": row["comment_id"],
                "file_name": row["file_name"],
                "content_type": row["content_type"],
                "size": row["size"],
                "sha256": row["sha256"],
                "storage_key": row["storage_key"],
                "is_inline": row["is_inline"],
                "content_id": row["content_id"],
                "linked_at": row["created_at"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            }
        )
    return rows


async def copy_files(
    jobs: list[FileJob], env: Env, store_to: Any, *, concurrency: int = 16
) -> list[dict[str, Any]]:
    """Copy each job's bytes to the target store; rows of the copied ones (size, sha256).

    An object missing from the legacy store is reported (not fatal) and has no row.
    """
    gate = asyncio.Semaphore(concurrency)

    async def one(job: FileJob) -> dict[str, Any] | None:
        data = job.data
        if data is None and job.s3_key is not None:
            data = await env.fetch(job.s3_key)
        row = job.row
        if data is None:
            RowContext(env.report, row["source_table"], row["source_key"]).issue(
                None, "missing_object", f"{job.s3_key} not in the legacy store: not copied"
            )
            return None
        async with gate:
            await files.put(store_to, row["storage_key"], data)
        return {**row, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    done = await asyncio.gather(*(one(j) for j in jobs))
    return [r for r in done if r is not None]


class Laps:
    """Seconds spent per phase of the batch loop (read, transform, files, write…)."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.mark = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.into[name] = round(self.into.get(name, 0.0) + now - self.mark, 3)
        self.mark = now


class Progress:
    """One line per table on stderr: rows, rows/s, ETA (rewritten in place on a terminal)."""

    def __init__(self, table: str, total: int, *, quiet: bool = False) -> None:
        self.table, self.total, self.quiet = table, total, quiet
        self.started = time.perf_counter()
        self.done = 0
        self._shown = 0.0

    def advance(self, n: int, *, final: bool = False) -> None:
        self.done += n
        now = time.perf_counter()
        if self.quiet or (not final and now - self._shown < 1.0):
            return
        self._shown = now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate and self.total > self.done else 0
        end = "\n" if final or not sys.stderr.isatty() else "\r"
        sys.stderr.write(
            f"{self.table:<22}{self.done:>10,}/{self.total:<10,}{rate:>10,.0f} rows/s"
            f"  ETA {left:6.0f}s{end}"
        )
        sys.stderr.flush()


async def _checkpoint(conn: AsyncConnection, migration_id: str, table: str) -> dict[str, Any]:
    cp = table_of(LegacyCheckpoint)
    row = (
        (
            await conn.execute(
                select(cp).where(cp.c.migration_id == migration_id, cp.c.source_table == table)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return {"last_id": None, "rows": 0, "loaded": 0, "skipped": 0, "done_at": None}
    return dict(row)


async def _save_checkpoint(
    conn: AsyncConnection, migration_id: str, table: str, values: dict[str, Any]
) -> None:
    cp = table_of(LegacyCheckpoint)
    stmt = insert(conn, cp).values(migration_id=migration_id, source_table=table, **values)
    stmt = stmt.on_conflict_do_update(index_elements=["migration_id", "source_table"], set_=values)
    await conn.execute(stmt)


async def load(
    source: LegacySource,
    engine: AsyncEngine,
    space: IdSpace,
    migration_id: str,
    report: Report,
    *,
    store_from: Any | None,
    store_to: Any,
    cipher: Cipher,
    secrets: LegacySecrets | None = None,
    since: int | None = None,
    batch_size: int = 1000,
    quiet: bool = False,
    tables: tuple[str, ...] = MIGRATED,
) -> None:
    """Load every migrated table, continuing from its checkpoint."""
    report.steps.append("load")
    load_started = time.perf_counter()
    seconds: dict[str, float] = report.facts.setdefault("load_seconds_by_table", {})
    # CPU of the whole process (reading, transforming, the SQLite writer thread)
    cpu_seconds: dict[str, float] = report.facts.setdefault("load_cpu_seconds_by_table", {})
    present = await source.columns()
    agents = await legacy_agents(source, space) if "agents" in present else {}
    for table in tables:
        if table not in present:
            continue
        spec = SPECS[table]
        async with engine.connect() as conn:
            checkpoint = await _checkpoint(conn, migration_id, table)
        stats = report.table(table)
        if checkpoint["done_at"] is not None and since is None:
            stats.migrated, stats.skipped = checkpoint["loaded"], checkpoint["skipped"]
            continue
        table_started, cpu_started = time.perf_counter(), time.process_time()
        cache: dict[str, Any] = {}
        changed = None if spec.whole_on_since else since
        total = await source.count(table, since=changed)
        after = checkpoint["last_id"] if since is None else None
        counts = (
            {k: checkpoint[k] for k in ("rows", "loaded", "skipped")}
            if since is None
            else {"rows": 0, "loaded": 0, "skipped": 0}
        )
        progress = Progress(table, total, quiet=quiet)
        progress.done = counts["rows"]
        stream = source.stream(table, after=after, since=changed, batch_size=batch_size)
        lap = Laps(report.facts.setdefault("load_phase_seconds", {}).setdefault(table, {}))

        writing: asyncio.Task[None] | None = None  # the previous batch's transaction
        try:
            async for rows in prefetch(stream):
                lap("read")
                async with engine.connect() as conn:  # lookups: what committed batches wrote
                    env = Env(
                        space,
                        conn,
                        report,
                        store_from=store_from,
                        agents=agents,
                        source=source,
                        secrets=secrets,
                        present=set(present),
                        cache=cache,
                    )
                    batch = Batch()
                    await transform_batch(spec, rows, env, batch)
                    lap("transform")
                    if batch.files:
                        copied = await copy_files(batch.files, env, store_to)
                        for row in copied:
                            row["migration_id"] = migration_id
                        batch.rows[LegacyFile.__tablename__] = copied
                        batch.rows[Attachment.__tablename__] = await attachment_rows(
                            conn, copied, batch
                        )
                    lap("files")
                if writing is not None:
                    await writing
                    lap("wait")
                counts["rows"] += len(rows)
                counts["loaded"] += batch.loaded
                counts["skipped"] += batch.skipped
                checkpoint_values = {"last_id": int(rows[-1]["id"]), **counts, "done_at": None}
                writing = asyncio.create_task(
                    _write(engine, batch, table, checkpoint_values, migration_id, since, cipher)
                )
                if not spec.overlap:
                    await writing
                    writing = None
                    lap("write")
                progress.advance(len(rows))
            if writing is not None:
                await writing
                lap("wait")
        finally:
            if writing is not None and not writing.done():  # the loop failed: undo it
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writing
        async with engine.begin() as conn:
            if spec.finish is not None:
                await spec.finish(conn, source, space)
            last = checkpoint["last_id"] if stream.last_id is None else int(stream.last_id)
            done = {"last_id": last, **counts, "done_at": int(time.time())}
            await _save_checkpoint(conn, migration_id, table, done)
        progress.advance(0, final=True)
        stats.migrated, stats.skipped = counts["loaded"], counts["skipped"]
        seconds[table] = round(time.perf_counter() - table_started, 2)
        cpu_seconds[table] = round(time.process_time() - cpu_started, 3)
        report.note_peak_memory(f"load {table}")
    report.facts["load_seconds"] = round(time.perf_counter() - load_started, 2)


async def _write(
    engine: AsyncEngine,
    batch: Batch,
    table: str,
    checkpoint: dict[str, Any],
    migration_id: str,
    since: int | None,
    cipher: Cipher,
) -> None:
    """One batch's rows, id map entries and checkpoint, in one transaction."""
    async with engine.begin() as conn:
        await write_batch(
            conn, batch, migration_id=migration_id, update=since is not None, cipher=cipher
        )
        await _save_checkpoint(conn, migration_id, table, checkpoint)


async def prefetch(
    batches: AsyncIterable[list[dict[str, Any]]], depth: int = 2
) -> AsyncIterator[list[dict[str, Any]]]:
    """The batches of `batches`, read ahead by up to `depth` while the caller works."""
    queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(depth)

    async def pump() -> None:
        try:
            async for rows in batches:
                await queue.put(rows)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while (rows := await queue.get()) is not None:
            yield rows
        await task  # raises what the reader raised
    finally:
        if not task.done():
            task.cancel()
