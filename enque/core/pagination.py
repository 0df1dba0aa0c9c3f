"""Keyset pagination over any sort key: stable under inserts, cost independent of depth."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from enque.core.api import PageParams, decode_cursor, encode_cursor

T = TypeVar("T")


@dataclass
class SortKey:
    column: Any
    descending: bool = False


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    total: int | None = None

    def meta(self, limit: int) -> dict[str, Any]:
        meta: dict[str, Any] = {"limit": limit, "nextCursor": self.next_cursor}
        if self.total is not None:
            meta["total"] = self.total
        return meta


def after_condition(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order given by `keys`."""
    if all(k.descending == keys[0].descending for k in keys):
        left = tuple_(*(k.column for k in keys))
        right = tuple_(*values)
        return left < right if keys[0].descending else left > right
    clauses = []
    for i, key in enumerate(keys):
        equal = [keys[j].column == values[j] for j in range(i)]
        step = key.column < values[i] if key.descending else key.column > values[i]
        clauses.append(and_(*equal, step))
    return or_(*clauses)


async def keyset_page(
    session: AsyncSession,
    stmt: Select[Any],
    keys: Sequence[SortKey],
    page: PageParams,
    key_of: Callable[[Any], Sequence[Any]],
    *,
    scalars: bool = True,
) -> Page[Any]:
    """Run `stmt` ordered by `keys` from `page.cursor`, fetching one extra row to know if more."""
    total = None
    if page.include_total:
        count_stmt = select(func.count()).select_from(stmt.order_by(None).subquery())
        total = (await session.execute(count_stmt)).scalar_one()
    if page.cursor:
        stmt = stmt.where(after_condition(keys, decode_cursor(page.cursor, len(keys))))
    order = [k.column.desc() if k.descending else k.column.asc() for k in keys]
    stmt = stmt.order_by(*order).limit(page.limit + 1)
    result = await session.execute(stmt)
    rows = list(result.scalars().all() if scalars else result.all())
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        next_cursor = encode_cursor(key_of(rows[-1]))
    return Page(rows, next_cursor, total)
