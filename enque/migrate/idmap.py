"""Legacy integer ids → deterministic UUIDv7 ids, and the persistent `legacy_id_map`.

A new id is a function of (migration namespace, source table, old id) only, so a foreign
key is remapped without a lookup and a re-run (after a crash, or a `--since` delta run)
produces the very same ids. Layout of the 128 bits (RFC 9562 UUIDv7):

    48 bits  unix_ts_ms   the migration's epoch (fixed when the source is first migrated)
     4 bits  version      7
    12 bits  rand_a       the source table's code (TABLE_CODES, never renumbered)
     2 bits  variant      0b10
    62 bits  rand_b       old id (32 bits) then 30 bits of HMAC-SHA256(namespace, table:id);
                          composite keys: 62 bits of that HMAC

Integer keys are injective per table (no collision is possible), and ids sort by table then
old id, which keeps index inserts sequential. Every assignment is also written to
`legacy_id_map`, which the verify step and people read.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from enque.migrate.models import LegacyIdMap, LegacyMigration

# Append only: a code, once used, keeps its meaning (ids already migrated depend on it).
TABLE_CODES: dict[str, int] = {
    "workspaces": 1,
    "agents": 2,
    "teams": 3,
    "team_members": 4,
    "companies": 5,
    "users": 6,
    "unassigned_users": 7,
    "categories": 8,
    "microsoft_integration": 9,
    "mailbox_connections": 10,
    "mailbox_team_assignments": 11,
    "microsoft_tokens": 12,
    "email_sync_config": 13,
    "tickets": 14,
    "ticket_bodies": 15,
    "comments": 16,
    "ticket_attachments": 17,
    "email_ticket_mapping": 18,
    "scheduled_comments": 19,
    "canned_replies": 20,
    "global_signatures": 21,
    "automations": 22,
    "automation_conditions": 23,
    "automation_actions": 24,
    "workflows": 25,
    "notification_templates": 26,
    "notification_settings": 27,
    "schedule": 28,
    "activities": 29,
    # rows the migration derives from others (composite keys)
    "agent_workspaces": 100,  # "<agent id>": the membership created for each legacy agent
    "comments:inline_image": 101,  # "<comment id>:<content id>"
    "users:original_sender": 102,  # "<workspace id>:<lowercased email>"
    "tickets:first_message": 103,  # "<ticket id>": the comment made of ticket_bodies
    "microsoft_apps": 104,  # "<integration id>:<workspace id>": the app of each workspace
    "notification_settings:agent": 105,  # "<setting id>:<new agent id>"
    "workflows:rule": 106,  # "<workflow id>:<n>": a workflow's second rule (n ≥ 1)
}

_MASK_30 = (1 << 30) - 1
_MASK_62 = (1 << 62) - 1


@dataclass(frozen=True)
class IdSpace:
    """The id derivation of one migration."""

    namespace: uuid.UUID
    epoch_ms: int

    @cached_property
    def _pads(self) -> tuple[Any, Any]:
        """HMAC-SHA256 of the namespace key, its inner and outer hashes started once (RFC
        2104; the same digest as `hmac.digest`, without setting the key up on every call)."""
        key = self.namespace.bytes.ljust(64, b"\0")
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        return inner, outer

    def _mac(self, message: bytes) -> bytes:
        inner, outer = self._pads
        first = inner.copy()
        first.update(message)
        second = outer.copy()
        second.update(first.digest())
        return second.digest()

    @cached_property
    def _prefixes(self) -> dict[str, str]:
        """The first 64 bits of each table's ids as text (`xxxxxxxx-xxxx-7ccc`): fixed."""
        found = {}
        for table, code in TABLE_CODES.items():
            high = (self.epoch_ms & ((1 << 48) - 1)) << 16 | 0x7 << 12 | code
            h = f"{high:016x}"
            found[table] = f"{h[:8]}-{h[8:12]}-{h[12:]}"
        return found

    def new_id(self, table: str, old_id: int | str) -> str:
        prefix = self._prefixes[table]
        key = int(old_id) if isinstance(old_id, str) and old_id.isdigit() else old_id
        mac = self._mac(f"{table}:{key}".encode())
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < 1 << 32:
            rand_b = (key << 30) | (int.from_bytes(mac[:4], "big") & _MASK_30)
        else:
            rand_b = int.from_bytes(mac[:8], "big") & _MASK_62
        low = f"{0b10 << 62 | rand_b:016x}"  # variant, then rand_b
        return f"{prefix}-{low[:4]}-{low[4:]}"

    def maybe(self, table: str, old_id: int | str | None) -> str | None:
        """`new_id`, NULL staying NULL (for nullable foreign keys)."""
        return None if old_id is None else self.new_id(table, old_id)


class IdMap:
    """The id space of one source, and its persistent map in the target database."""

    def __init__(self, migration: LegacyMigration) -> None:
        self.migration = migration
        self.space = IdSpace(uuid.UUID(migration.namespace), migration.epoch_ms)

    @classmethod
    async def open(cls, session: AsyncSession, source: str) -> IdMap:
        """The map of `source` (host:port/database), created on its first migration."""
        migration = await session.scalar(
            select(LegacyMigration).where(LegacyMigration.source == source)
        )
        if migration is None:
            migration = LegacyMigration(
                source=source, namespace=str(uuid.uuid4()), epoch_ms=int(time.time() * 1000)
            )
            session.add(migration)
            await session.flush()
        return cls(migration)

    def new_id(self, table: str, old_id: int | str) -> str:
        return self.space.new_id(table, old_id)

    async def lookup(
        self, session: AsyncSession, table: str, old_ids: Iterable[int | str]
    ) -> dict[str, str]:
        """The recorded new ids of `old_ids` (keys as text); absent ones are left out."""
        keys = sorted({str(k) for k in old_ids})
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = await session.execute(
                select(LegacyIdMap.old_id, LegacyIdMap.new_id).where(
                    LegacyIdMap.migration_id == self.migration.id,
                    LegacyIdMap.source_table == table,
                    LegacyIdMap.old_id.in_(chunk),
                )
            )
            found.update({old: new for old, new in rows.tuples()})
        return found

    async def assign(
        self, session: AsyncSession, table: str, old_ids: Iterable[int | str]
    ) -> dict[str, str]:
        """New ids for `old_ids`: recorded ones as recorded, the others derived and recorded."""
        keys = {str(k) for k in old_ids}
        mapping = await self.lookup(session, table, keys)
        fresh = [
            {
                "migration_id": self.migration.id,
                "source_table": table,
                "old_id": key,
                "new_id": self.new_id(table, key),
            }
            for key in sorted(keys - mapping.keys())
        ]
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        for start in range(0, len(fresh), 500):
            chunk = fresh[start : start + 500]
            await session.execute(insert(LegacyIdMap).values(chunk).on_conflict_do_nothing())
        mapping.update({row["old_id"]: row["new_id"] for row in fresh})
        return mapping
