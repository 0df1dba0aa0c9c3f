"""Columns that hold secrets encrypted with the runtime's Cipher, and their key rotation.

A column declared with `encrypted_column()` stores `Cipher.encrypt()` output of a JSON value.
The ciphertext is bound to its row (`table.column:id` is the associated data), so a value
copied into another row does not decrypt. `rotate_secrets()` finds every such column through
the table metadata and re-encrypts values whose key id is not the current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Column, Table, Text, select, update
from sqlalchemy.orm import MappedColumn, mapped_column

from enque.core.crypto import Cipher
from enque.core.db import Base, Database

ENCRYPTED = "encrypted"


def encrypted_column() -> MappedColumn[Any]:
    return mapped_column(Text, nullable=True, default=None, info={ENCRYPTED: True})


def context_for(table: str, column: str, row_id: str) -> str:
    return f"{table}.{column}:{row_id}"


def seal(cipher: Cipher, row: Any, column: str, value: dict[str, Any] | None) -> None:
    """Encrypt `value` into `row.column` (the row's id must be set already)."""
    if value is None:
        setattr(row, column, None)
        return
    context = context_for(row.__tablename__, column, row.id)
    setattr(row, column, cipher.encrypt(orjson.dumps(value).decode(), context))


def unseal(cipher: Cipher, row: Any, column: str) -> dict[str, Any] | None:
    token = getattr(row, column)
    if token is None:
        return None
    plain = cipher.decrypt(token, context_for(row.__tablename__, column, row.id))
    value = orjson.loads(plain)
    return value if isinstance(value, dict) else None


def encrypted_columns() -> list[tuple[Table, Column[Any]]]:
    """Every (table, column) declared with `encrypted_column()`, in a stable order."""
    found = []
    for table in sorted(Base.metadata.tables.values(), key=lambda t: t.name):
        for column in table.columns:
            if column.info.get(ENCRYPTED):
                found.append((table, column))
    return found


@dataclass
class RotationReport:
    checked: int = 0
    rotated: int = 0


async def rotate_secrets(
    db: Database, cipher: Cipher, batch: int = 200
) -> dict[str, RotationReport]:
    """Re-encrypt with the current key every value sealed under an older key.

    Works in batches of `batch` rows, each batch its own transaction; safe to re-run.
    """
    reports: dict[str, RotationReport] = {}
    for table, column in encrypted_columns():
        report = reports.setdefault(f"{table.name}.{column.name}", RotationReport())
        id_col = table.c.id
        last = ""
        while True:
            async with db.transaction() as session:
                rows = (
                    await session.execute(
                        select(id_col, column)
                        .where(id_col > last, column.is_not(None))
                        .order_by(id_col)
                        .limit(batch)
                    )
                ).all()
                for row_id, token in rows:
                    report.checked += 1
                    if not cipher.needs_rotation(token):
                        continue
                    context = context_for(table.name, column.name, row_id)
                    fresh = cipher.encrypt(cipher.decrypt(token, context), context)
                    await session.execute(
                        update(table).where(id_col == row_id).values({column.name: fresh})
                    )
                    report.rotated += 1
            if len(rows) < batch:
                break
            last = rows[-1][0]
    return reports
