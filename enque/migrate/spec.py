"""How one legacy table becomes target rows: a declarative `TableSpec` and the one driver that
applies it to a batch.

A spec names the source table, the target model its rows become, and a `transform` of one
legacy row. Everything rows have in common is done once, by `transform_batch`: the report
context of the row, the workspace check (rows of a workspace that was not migrated are
skipped and reported), the created/updated times, the derived id, the `legacy_id_map` entry
and the counts. A transform returns the target row (the driver fills `id`, `workspace_id`,
`created_at` and `updated_at` when it leaves them out), the id of the row it was folded into
(`Folded`: a `ticket_bodies` row lives in its ticket), or None when the row is left out (the
transform reported why). Lookups a transform needs are made once per batch by `prepare`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from enque.customers.models import User
from enque.migrate import files
from enque.migrate.idmap import IdSpace
from enque.migrate.report import Report, RowContext
from enque.migrate.source import LegacySource
from enque.migrate.transform import LegacySecrets, unix_time
from enque.workspaces.models import Workspace

Row = dict[str, Any]

# Entries a lookup cache keeps across batches before it starts afresh.
CACHE_ROWS = 50_000
_ABSENT = object()


def table_of(model: Any) -> Table:
    return cast(Table, model.__table__)


def insert(conn: AsyncConnection, table: Table) -> Any:
    """An INSERT of the target's dialect (for its ON CONFLICT clauses)."""
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


@dataclass
class FileJob:
    """Bytes to copy: from a BLOB (`data`) or a legacy object (`s3_key`), to `row`'s key."""

    row: Row
    data: bytes | None = None
    s3_key: str | None = None


@dataclass
class Batch:
    """What one batch of legacy rows becomes: target rows per table, in write order."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    idmap: list[tuple[str, str, str]] = field(default_factory=list)
    files: list[FileJob] = field(default_factory=list)
    loaded: int = 0
    skipped: int = 0

    def add(self, table: Table, row: Row) -> None:
        self.rows.setdefault(table.name, []).append(row)


def pick_time(*values: int | None, fallback: int) -> int:
    """The first known moment (NOT NULL target columns whose legacy value was invalid)."""
    for value in values:
        if value is not None:
            return value
    return fallback


class Env:
    """What the transforms read: the id space, the legacy source and store, the target."""

    def __init__(
        self,
        space: IdSpace,
        conn: AsyncConnection,
        report: Report,
        *,
        store_from: Any | None,
        agents: dict[int, str],
        source: LegacySource | None = None,
        secrets: LegacySecrets | None = None,
        present: set[str] | None = None,
        cache: dict[str, Any] | None = None,
        concurrency: int = 16,
    ) -> None:
        self.source = source
        self.space = space
        self.conn = conn
        self.report = report
        self.store_from = store_from
        self.secrets = secrets or LegacySecrets(None)
        self.present = present or set()  # the tables the source has
        self.agents = agents  # legacy agent id → new agent id (same email = one agent)
        self.fallback_time = space.epoch_ms // 1000
        self._ids: dict[tuple[str, int | str], str] = {}
        self._gate = asyncio.Semaphore(concurrency)
        # lookups kept for the whole table (small target tables, source-wide choices)
        self.cache: dict[str, Any] = {} if cache is None else cache

    def id(self, table: str, old: int | str) -> str:
        key = (table, old)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = self.space.new_id(table, old)
        return found

    def maybe(self, table: str, old: int | str | None) -> str | None:
        return None if old is None else self.id(table, old)

    def ctx(self, table: str, row_id: Any) -> RowContext:
        return RowContext(self.report, table, row_id)

    def agent(self, old: Any, ctx: RowContext, column: str) -> str | None:
        """The new agent of a legacy agent id; a missing one is reported and becomes NULL."""
        if old is None:
            return None
        new = self.agents.get(int(old))
        if new is None:
            ctx.issue(column, "orphan_reference", f"agent {old} missing: set to NULL")
        return new

    async def existing(self, table: Table, ids: Iterable[str | None]) -> set[str]:
        """Those of `ids` that are rows of `table` in the target."""
        return set(await self.column(table, ids, "id"))

    async def known(self, table: Table, ids: Iterable[str | None]) -> set[str]:
        """Those of `ids` that are rows of `table`, remembered for the later batches (bounded,
        see `CACHE_ROWS`): for a table the one being loaded does not write."""
        return set(await self.column(table, ids, "id", keep=True))

    async def small(self, table: Table) -> set[str]:
        """All ids of a small target table (workspaces, teams, categories): one per team or
        workspace of the help desk, never per customer or ticket."""
        key = f"ids:{table.name}"
        if key not in self.cache:
            rows = await self.conn.execute(select(table.c.id))
            self.cache[key] = {r[0] for r in rows}
        return cast(set[str], self.cache[key])

    async def column(
        self, table: Table, ids: Iterable[str | None], name: str, *, keep: bool = False
    ) -> dict[str, Any]:
        """`id → column` of the target rows among `ids`.

        With `keep`, answers (absent rows too) are remembered for the later batches of the
        table being loaded: only for tables it does not write (bounded, see `CACHE_ROWS`)."""
        if keep:
            memo = self.memo(f"column:{table.name}.{name}")
            wanted_ids = {i for i in ids if i}
            missing = [i for i in wanted_ids if i not in memo]
            if missing:
                found_now = await self.column(table, missing, name)
                for i in missing:
                    memo[i] = found_now.get(i, _ABSENT)
            return {i: memo[i] for i in wanted_ids if memo[i] is not _ABSENT}
        found: dict[str, Any] = {}
        wanted = sorted({i for i in ids if i})
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = await self.conn.execute(
                select(table.c.id, table.c[name]).where(table.c.id.in_(chunk))
            )
            found.update({r[0]: r[1] for r in rows})
        return found

    def memo(self, name: str) -> dict[Any, Any]:
        """A lookup cache kept across the batches of one table, emptied when it grows past
        `CACHE_ROWS` entries (memory stays bounded whatever the size of the database)."""
        found = self.cache.get(name)
        if found is None or len(found) > CACHE_ROWS:
            found = self.cache[name] = {}
        return cast(dict[Any, Any], found)

    async def users_by_email(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(workspace id, lowercased email) → the id of the live customer with that address."""
        users = table_of(User)
        found: dict[tuple[str, str], str] = {}
        items = sorted(pairs)
        for start in range(0, len(items), 200):
            chunk = items[start : start + 200]
            rows = await self.conn.execute(
                select(users.c.workspace_id, func.lower(users.c.email), users.c.id).where(
                    tuple_(users.c.workspace_id, func.lower(users.c.email)).in_(chunk),
                    users.c.deleted_at.is_(None),
                )
            )
            found.update({(w, e): i for w, e, i in rows})
        return found

    async def source_rows(
        self, table: str, column: str, values: Iterable[Any], *, order: str = "id"
    ) -> list[Row]:
        """The legacy rows of `table` whose `column` is one of `values`, in `order`."""
        wanted = sorted({int(v) for v in values if v is not None})
        if self.source is None or not wanted:
            return []
        found: list[Row] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            found.extend(
                await self.source.fetch_dicts(
                    f"SELECT * FROM `{table}` WHERE `{column}` IN ({marks}) ORDER BY {order}",
                    tuple(chunk),
                )
            )
        return found

    async def source_ids(self, table: str, ids: set[int]) -> set[int]:
        """Those of `ids` that are rows of the legacy `table`."""
        return {int(r["id"]) for r in await self.source_rows(table, "id", ids)}

    async def fetch(self, key: str) -> bytes | None:
        if self.store_from is None:
            return None
        async with self._gate:
            return await files.fetch(self.store_from, key)

    async def fetch_all(self, keys: set[str]) -> dict[str, bytes | None]:
        ordered = sorted(keys)
        values = await asyncio.gather(*(self.fetch(k) for k in ordered))
        return dict(zip(ordered, values, strict=True))


@dataclass(slots=True)
class Item:
    """One legacy row being transformed, and what its transform may use (slotted: one is
    made for every legacy row)."""

    row: Row
    ctx: RowContext
    env: Env
    out: Batch
    ahead: Any  # what the spec's `prepare` returned for the batch
    workspace: str  # the new workspace id ("" for tables without one)
    created: int
    updated: int


@dataclass(frozen=True)
class Folded:
    """The legacy row lives in another target row (`id`), written by another transform."""

    id: str


Transform = Callable[[Item], Row | Folded | None]
Prepare = Callable[[list[Row], Env], Awaitable[Any]]
Finish = Callable[[AsyncConnection, LegacySource, IdSpace], Awaitable[None]]


@dataclass(frozen=True)
class TableSpec:
    """How one legacy table is migrated."""

    source: str
    target: Any | None  # the model its rows become (None: every row is folded or left out)
    transform: Transform
    prepare: Prepare | None = None  # lookups made once per batch, handed to each row
    tenant: bool = True  # rows whose workspace was not migrated are left out (reported)
    # read whole by `--since` (its rows also hold what other tables changed: mailboxes, rules)
    whole_on_since: bool = False
    finish: Finish | None = None  # once the whole table is loaded (merges, counters)
    # a batch may be transformed while the one before it is still being written: true when
    # no transform reads what earlier batches of its own table wrote (or only rows with
    # derived ids, which a second insert leaves alone)
    overlap: bool = False


def row_times(row: Row, ctx: RowContext, fallback: int) -> tuple[int, int]:
    """(created, updated) of a legacy row: each falls back on the other, then on `fallback`."""
    created = unix_time(row.get("created_at"), ctx, "created_at")
    updated = unix_time(row.get("updated_at"), ctx, "updated_at") if "updated_at" in row else None
    return pick_time(created, updated, fallback=fallback), pick_time(
        updated, created, fallback=fallback
    )


async def transform_batch(spec: TableSpec, rows: list[Row], env: Env, out: Batch) -> None:
    """Apply `spec` to a batch of legacy rows, into `out`."""
    ahead = await spec.prepare(rows, env) if spec.prepare is not None else None
    workspaces = await env.small(table_of(Workspace)) if spec.tenant else set()
    target = table_of(spec.target) if spec.target is not None else None
    columns = set(target.c.keys()) if target is not None else set()
    # the columns the driver fills (looked up once, not for every row)
    fill_workspace, fill_created, fill_updated = (
        name in columns for name in ("workspace_id", "created_at", "updated_at")
    )
    workspace_of: dict[Any, str] = {}  # legacy workspace id → new id ("" for NULL)
    for row in rows:
        old = row["id"]
        ctx = RowContext(env.report, spec.source, old)
        workspace = ""
        if spec.tenant:
            legacy_ws = row.get("workspace_id")
            workspace = workspace_of.get(legacy_ws, "")
            if not workspace:
                workspace = workspace_of[legacy_ws] = env.maybe("workspaces", legacy_ws) or ""
            if workspace not in workspaces:
                ctx.issue(
                    "workspace_id",
                    "orphan_skipped",
                    f"workspace {legacy_ws!r} missing: row not migrated",
                )
                out.skipped += 1
                continue
        created, updated = row_times(row, ctx, env.fallback_time)
        result = spec.transform(Item(row, ctx, env, out, ahead, workspace, created, updated))
        if result is None:
            out.skipped += 1
            continue
        if isinstance(result, Folded):
            new = result.id
        else:
            assert target is not None, f"{spec.source}: a row without a target table"
            new = result.get("id") or result.setdefault("id", env.id(spec.source, old))
            if fill_workspace:
                result.setdefault("workspace_id", workspace)
            if fill_created:
                result.setdefault("created_at", created)
            if fill_updated:
                result.setdefault("updated_at", updated)
            out.add(target, result)
        out.idmap.append((spec.source, str(old), new))
        out.loaded += 1
