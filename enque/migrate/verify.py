"""The verify step: the target against the source, row by row and file by file.

Every source row of every migrated table is read again and transformed by the load's own
table specs; each target row they produce must exist, and the checksum of its normalised
values must equal the checksum of the same columns read back from the target (secrets are
compared decrypted with the target's key: they are sealed afresh on each write). Every file
is read back from the target storage: size and sha256 must equal the source bytes (BLOB or
legacy object) and what `legacy_files` recorded. Then references without a database
foreign key are checked. Each difference is an error in the report (non-zero exit).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import obstore
import orjson
from obstore.exceptions import NotFoundError
from sqlalchemy import Table, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from enque.activity.models import Activity
from enque.agents.models import Agent
from enque.comments.models import Comment
from enque.core.crypto import Cipher, DecryptionError
from enque.core.secrets import context_for
from enque.customers.models import Company, User
from enque.mailboxes.models import EmailMessage, Mailbox
from enque.migrate.idmap import IdSpace
from enque.migrate.load import MIGRATED, SPECS, WRITE_ORDER, sealed_columns
from enque.migrate.models import LegacyFile
from enque.migrate.people import legacy_agents
from enque.migrate.report import Report
from enque.migrate.source import LegacySource
from enque.migrate.spec import Batch, Env, transform_batch
from enque.migrate.transform import LegacySecrets, row_checksum
from enque.teams.models import Team
from enque.tickets.models import Ticket

_TABLES = {t.name: t for t in WRITE_ORDER}


@dataclass
class TableCheck:
    source_rows: int = 0
    expected: int = 0  # target rows the source rows must have become
    found: int = 0
    missing: int = 0
    different: int = 0
    files: int = 0
    files_bad: int = 0


def _normal(values: list[Any]) -> list[Any]:
    """Values as both sides compare them (booleans as 0/1: SQLite stores integers)."""
    return [int(v) if v.__class__ is bool else v for v in values]


def _unsealed(cipher: Cipher, table: Table, column: str, row: dict[str, Any]) -> Any:
    """A secret column's plain value (what the load sealed), or a marker that it is unreadable."""
    token = row[column]
    if token is None:
        return None
    try:
        return orjson.loads(cipher.decrypt(token, context_for(table.name, column, row["id"])))
    except DecryptionError:
        return "(does not decrypt with this ENCRYPTION_KEY)"


async def compare_rows(
    conn: AsyncConnection,
    table: Table,
    rows: list[dict[str, Any]],
    report: Report,
    source_table: str,
    check: TableCheck,
    cipher: Cipher,
) -> None:
    """Each row must exist in `table` with the same values (checksums of the same columns;
    secrets compared decrypted)."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != "migration_id"]
    secrets = [c for c in sealed_columns(table) if c in columns]
    ids = [r["id"] for r in rows]
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        result = await conn.execute(
            select(*(table.c[c] for c in columns)).where(table.c.id.in_(chunk))
        )
        found.update({r["id"]: dict(r) for r in result.mappings()})
    for values in found.values():
        for column in secrets:
            values[column] = _unsealed(cipher, table, column, values)
    for row in rows:
        check.expected += 1
        target = found.get(row["id"])
        if target is None:
            check.missing += 1
            report.issue(
                "missing_row",
                f"{table.name} {row['id']} absent from the target",
                table=source_table,
                level="error",
            )
            continue
        check.found += 1
        want = _normal([row[c] for c in columns])
        have = _normal([target[c] for c in columns])
        if row_checksum(want) != row_checksum(have):
            check.different += 1
            changed = sorted(c for c, a, b in zip(columns, want, have, strict=True) if a != b)
            report.issue(
                "row_differs",
                f"{table.name} {row['id']}: {', '.join(changed)} differ",
                table=source_table,
                level="error",
            )


async def compare_files(
    conn: AsyncConnection,
    batch: Batch,
    env: Env,
    store_to: Any,
    report: Report,
    source_table: str,
    check: TableCheck,
) -> None:
    """Each file the source holds: recorded in `legacy_files` and stored with its bytes."""
    files = LegacyFile.__table__
    ids = [job.row["id"] for job in batch.files]
    recorded: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        result = await conn.execute(select(files).where(files.c.id.in_(ids[start : start + 500])))
        recorded.update({r["id"]: dict(r) for r in result.mappings()})
    for job in batch.files:
        data = job.data if job.data is not None else await env.fetch(job.s3_key or "")
        if data is None:
            continue  # missing in the legacy store too (reported by the load)
        check.files += 1
        size, digest = len(data), hashlib.sha256(data).hexdigest()
        row = recorded.get(job.row["id"])
        problem = None
        if row is None:
            problem = "not recorded in legacy_files"
        elif (row["size"], row["sha256"]) != (size, digest):
            problem = "recorded size/sha256 differ from the source"
        else:
            stored = await _read(store_to, row["storage_key"])
            if stored is None:
                problem = f"{row['storage_key']} absent from the target storage"
            elif (len(stored), hashlib.sha256(stored).hexdigest()) != (size, digest):
                problem = f"{row['storage_key']}: stored bytes differ from the source"
        if problem is not None:
            check.files_bad += 1
            report.issue(
                "file_differs",
                f"{job.row['source_key']}: {problem}",
                table=source_table,
                level="error",
            )


async def _read(store: Any, key: str) -> bytes | None:
    try:
        result = await obstore.get_async(store, key)
    except (NotFoundError, FileNotFoundError):
        return None
    return bytes(await result.bytes_async())


# References the target does not enforce with a foreign key: (table, column, parent, filter).
LOOSE_REFERENCES: tuple[tuple[Any, str, Any, Any], ...] = (
    (Comment, "author_id", User, Comment.author_type == "user"),
    (Company, "primary_contact_id", User, None),
    (EmailMessage, "ticket_id", Ticket, None),
    (Ticket, "mailbox_id", Mailbox, None),
    (Mailbox, "team_id", Team, None),
    (Mailbox, "default_assignee_id", Agent, None),
    (Activity, "actor_id", Agent, Activity.actor_type == "agent"),
    (Activity, "subject_id", Ticket, Activity.subject_type == "ticket"),
    (Activity, "subject_id", Comment, Activity.subject_type == "comment"),
    (Activity, "subject_id", User, Activity.subject_type == "user"),
    (Activity, "subject_id", Team, Activity.subject_type == "team"),
    (Activity, "subject_id", Company, Activity.subject_type == "company"),
)


async def check_references(conn: AsyncConnection, report: Report) -> dict[str, int]:
    counts: dict[str, int] = {}
    for model, column, parent, extra in LOOSE_REFERENCES:
        child_t, parent_t = model.__table__, parent.__table__
        condition = and_(
            child_t.c[column].is_not(None),
            ~select(parent_t.c.id).where(parent_t.c.id == child_t.c[column]).exists(),
        )
        if extra is not None:
            condition = and_(condition, extra)
        dangling = await conn.scalar(select(func.count()).select_from(child_t).where(condition))
        counts[f"{child_t.name}.{column}→{parent_t.name}"] = int(dangling or 0)
        if dangling:
            report.issue(
                "dangling_reference",
                f"{dangling} row(s) point to a missing {parent_t.name} row",
                table=child_t.name,
                column=column,
                level="error",
            )
    return counts


async def verify(
    source: LegacySource,
    engine: AsyncEngine,
    space: IdSpace,
    report: Report,
    *,
    store_from: Any | None,
    store_to: Any,
    cipher: Cipher,
    secrets: LegacySecrets | None = None,
    batch_size: int = 1000,
    sample: int | None = None,
) -> dict[str, TableCheck]:
    """Compare every migrated table (or its first `sample` rows) and every file."""
    report.steps.append("verify")
    started = time.perf_counter()
    present = await source.columns()
    agents = await legacy_agents(source, space) if "agents" in present else {}
    scratch = Report(source=report.source)  # transform findings were reported by the load
    checks: dict[str, TableCheck] = {}
    for table in MIGRATED:
        if table not in present:
            continue
        check = checks[table] = TableCheck()
        cache: dict[str, Any] = {}
        async for rows in source.stream(table, batch_size=batch_size):
            async with engine.connect() as conn:
                env = Env(
                    space,
                    conn,
                    scratch,
                    store_from=store_from,
                    agents=agents,
                    source=source,
                    secrets=secrets,
                    present=set(present),
                    cache=cache,
                )
                batch = Batch()
                await transform_batch(SPECS[table], rows, env, batch)
                check.source_rows += len(rows)
                for name, target_rows in batch.rows.items():
                    await compare_rows(
                        conn, _TABLES[name], target_rows, report, table, check, cipher
                    )
                if batch.files:
                    await compare_files(conn, batch, env, store_to, report, table, check)
            if sample is not None and check.source_rows >= sample:
                break
        stats = report.table(table)
        stats.source_rows = stats.source_rows or check.source_rows
        report.note_peak_memory(f"verify {table}")
    async with engine.connect() as conn:
        report.facts["dangling_references"] = await check_references(conn, report)
    report.facts["verify"] = {
        name: {
            "sourceRows": c.source_rows,
            "targetRowsExpected": c.expected,
            "found": c.found,
            "missing": c.missing,
            "different": c.different,
            "files": c.files,
            "filesBad": c.files_bad,
        }
        for name, c in checks.items()
    }
    report.facts["verify_seconds"] = round(time.perf_counter() - started, 2)
    return checks
