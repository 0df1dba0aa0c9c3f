"""Ticket categories: a short list per workspace, names unique regardless of case."""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.categories.models import Category
from enque.core.api import PageParams
from enque.core.db import now, unit
from enque.core.errors import conflict, not_found, validation_error
from enque.core.pagination import Page, SortKey, keyset_page

FIELDS = ("name", "color")


async def get_category(session: AsyncSession, *, workspace_id: str, category_id: str) -> Category:
    category = (
        await session.execute(
            select(Category).where(
                Category.workspace_id == workspace_id,
                Category.id == category_id,
                Category.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if category is None:
        raise not_found("Category")
    return category


async def list_categories(
    session: AsyncSession, *, workspace_id: str, page: PageParams
) -> Page[Category]:
    stmt = select(Category).where(
        Category.workspace_id == workspace_id, Category.deleted_at.is_(None)
    )
    keys = [SortKey(Category.name), SortKey(Category.id)]
    return await keyset_page(session, stmt, keys, page, lambda c: (c.name, c.id))


async def _check_name(
    session: AsyncSession, workspace_id: str, name: str, except_id: str | None = None
) -> None:
    stmt = select(Category.id).where(
        Category.workspace_id == workspace_id,
        func.lower(Category.name) == name.lower(),
        Category.deleted_at.is_(None),
    )
    if except_id:
        stmt = stmt.where(Category.id != except_id)
    if (await session.execute(stmt)).first() is not None:
        raise conflict("A category with this name exists", [{"path": "name", "message": "taken"}])


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise conflict("A category with this name exists") from exc


async def create_category(
    session: AsyncSession, *, workspace_id: str, actor: Actor, name: str, color: str | None = None
) -> Category:
    async with unit(session):
        await _check_name(session, workspace_id, name)
        category = Category(workspace_id=workspace_id, name=name, color=color)
        session.add(category)
        await _flush(session)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="category.created",
            subject_type="category",
            subject_id=category.id,
            after={"name": name, "color": color},
        )
    return category


async def update_category(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    category_id: str,
    changes: dict[str, Any],
) -> Category:
    if "name" in changes and changes["name"] is None:
        raise validation_error("name", "may not be null")
    async with unit(session):
        category = await get_category(session, workspace_id=workspace_id, category_id=category_id)
        if changes.get("name"):
            await _check_name(session, workspace_id, changes["name"], except_id=category.id)
        diff = {
            to_camel(k): [getattr(category, k), v]
            for k, v in changes.items()
            if k in FIELDS and getattr(category, k) != v
        }
        if diff:
            for key in FIELDS:
                if key in changes:
                    setattr(category, key, changes[key])
            category.updated_at = max(now(), category.updated_at)
            await _flush(session)
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="category.updated",
                subject_type="category",
                subject_id=category.id,
                before={k: v[0] for k, v in diff.items()},
                after={k: v[1] for k, v in diff.items()},
            )
    return category


async def delete_category(
    session: AsyncSession, *, workspace_id: str, actor: Actor, category_id: str
) -> None:
    """Soft delete: no longer offered, kept on the tickets that carry it; the name is free again."""
    async with unit(session):
        category = await get_category(session, workspace_id=workspace_id, category_id=category_id)
        category.deleted_at = now()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="category.deleted",
            subject_type="category",
            subject_id=category.id,
            before={"name": category.name},
        )
