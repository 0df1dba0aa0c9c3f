"""Reading tickets: the inbox list, the detail view, summaries for events, the audit trail.

The list is one query per page: the ticket's list columns and the few related names joined by
primary key (never a body), ordered along a composite index led by `workspace_id`, so the first
page and the thousandth cost the same. The detail is two queries (ticket with its related rows
and body; comment counts), whatever the ticket holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from enque.activity.models import Activity
from enque.agents.models import Agent
from enque.categories.models import Category
from enque.comments.models import Comment
from enque.core.api import PageParams, decode_cursor, encode_cursor
from enque.core.db import now
from enque.core.errors import ApiError, not_found
from enque.core.pagination import Page, SortKey, after_condition, keyset_page
from enque.customers.models import Company, User
from enque.teams.models import Team
from enque.tickets import search
from enque.tickets.models import DUE_KEY, NO_DUE_DATE, Ticket, TicketBody, TicketTag
from enque.tickets.schemas import (
    ActivityOut,
    CategoryRef,
    CustomerRef,
    NamedRef,
    TicketBodyOut,
    TicketCounts,
    TicketDetail,
    TicketSummary,
)

ActorAgent = aliased(Agent)

SUMMARY_COLUMNS = (
    Ticket.id,
    Ticket.number,
    Ticket.subject,
    Ticket.status,
    Ticket.priority,
    Ticket.priority_weight,
    Ticket.tags,
    Ticket.due_at,
    Ticket.is_read,
    Ticket.user_id,
    User.name.label("user_name"),
    User.email.label("user_email"),
    Ticket.company_id,
    Ticket.assignee_id,
    Agent.display_name.label("assignee_name"),
    Ticket.team_id,
    Team.name.label("team_name"),
    Ticket.category_id,
    Category.name.label("category_name"),
    Category.color.label("category_color"),
    Ticket.mailbox_id,
    Ticket.first_response_at,
    Ticket.last_customer_reply_at,
    Ticket.last_agent_reply_at,
    Ticket.merged_into_ticket_id,
    Ticket.created_at,
    Ticket.updated_at,
    Ticket.version,
)
DETAIL_COLUMNS = (
    *SUMMARY_COLUMNS,
    Company.name.label("company_name"),
    Ticket.cc,
    Ticket.resolved_at,
    Ticket.closed_at,
    Ticket.merged_at,
    Ticket.linked_ticket_id,
    Ticket.deleted_at,
    TicketBody.sanitized_html,
    TicketBody.plain_text,
)


def _joined(stmt: Select[Any]) -> Select[Any]:
    """Related names by primary key. Outer joins keep `tickets` the driving table."""
    return (
        stmt.select_from(Ticket)
        .outerjoin(User, User.id == Ticket.user_id)
        .outerjoin(Agent, Agent.id == Ticket.assignee_id)
        .outerjoin(Team, Team.id == Ticket.team_id)
        .outerjoin(Category, Category.id == Ticket.category_id)
    )


def _summary_fields(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "number": row.number,
        "subject": row.subject,
        "status": row.status,
        "priority": row.priority,
        "tags": row.tags or [],
        "due_at": row.due_at,
        "is_read": row.is_read,
        "customer": CustomerRef(
            id=row.user_id, name=row.user_name or "", email=row.user_email or ""
        ),
        "company_id": row.company_id,
        "assignee": NamedRef(id=row.assignee_id, name=row.assignee_name or "")
        if row.assignee_id
        else None,
        "team": NamedRef(id=row.team_id, name=row.team_name or "") if row.team_id else None,
        "category": CategoryRef(
            id=row.category_id, name=row.category_name or "", color=row.category_color
        )
        if row.category_id
        else None,
        "mailbox_id": row.mailbox_id,
        "first_response_at": row.first_response_at,
        "last_customer_reply_at": row.last_customer_reply_at,
        "last_agent_reply_at": row.last_agent_reply_at,
        "merged_into_ticket_id": row.merged_into_ticket_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "version": row.version,
    }


def summary_of(row: Row[Any]) -> TicketSummary:
    return TicketSummary(**_summary_fields(row))


async def summaries(
    session: AsyncSession, workspace_id: str, ticket_ids: Sequence[str]
) -> dict[str, TicketSummary]:
    """List-shaped tickets by id, in one query (for events and bulk results)."""
    if not ticket_ids:
        return {}
    rows = await session.execute(
        _joined(select(*SUMMARY_COLUMNS)).where(
            Ticket.workspace_id == workspace_id, Ticket.id.in_(list(ticket_ids))
        )
    )
    return {row.id: summary_of(row) for row in rows}


async def ticket_detail(
    session: AsyncSession, *, workspace_id: str, ticket_id: str
) -> TicketDetail:
    row = (
        await session.execute(
            _joined(select(*DETAIL_COLUMNS))
            .outerjoin(Company, Company.id == Ticket.company_id)
            .outerjoin(TicketBody, TicketBody.ticket_id == Ticket.id)
            .where(Ticket.workspace_id == workspace_id, Ticket.id == ticket_id)
        )
    ).first()
    if row is None:
        raise not_found("Ticket")
    kind_counts: dict[str, int] = dict(
        (  # type: ignore[arg-type]
            await session.execute(
                select(Comment.kind, func.count())
                .where(
                    Comment.workspace_id == workspace_id,
                    Comment.ticket_id == ticket_id,
                    Comment.deleted_at.is_(None),
                )
                .group_by(Comment.kind)
            )
        ).all()
    )
    counts = TicketCounts(
        comments=sum(kind_counts.values()),
        replies=kind_counts.get("reply", 0),
        notes=kind_counts.get("note", 0),
        customer_messages=kind_counts.get("customer", 0),
    )
    return TicketDetail(
        **_summary_fields(row),
        company=NamedRef(id=row.company_id, name=row.company_name or "")
        if row.company_id
        else None,
        cc=row.cc or [],
        resolved_at=row.resolved_at,
        closed_at=row.closed_at,
        merged_at=row.merged_at,
        linked_ticket_id=row.linked_ticket_id,
        deleted_at=row.deleted_at,
        body=TicketBodyOut(content=row.sanitized_html or "", text=row.plain_text or ""),
        counts=counts,
    )


# ---------------------------------------------------------------- the inbox list


@dataclass
class TicketFilters:
    """The filters of `GET /v1/tickets`; `assignee_id` may be `me` or `none`."""

    status: list[str] = field(default_factory=list)
    priority: list[str] = field(default_factory=list)
    assignee_id: str | None = None
    team_id: str | None = None
    category_id: str | None = None
    user_id: str | None = None
    company_id: str | None = None
    mailbox_id: str | None = None
    tag: str | None = None
    q: str | None = None
    created_after: int | None = None
    created_before: int | None = None
    updated_after: int | None = None
    updated_before: int | None = None
    include_merged: bool = False
    sort: str = "-updatedAt"


# sorts whose key a change can move backwards (a priority lowered, a due date postponed)
MOVABLE_SORTS = frozenset({"priority", "dueAt"})


def _sort_keys(sort: str) -> list[SortKey]:
    if sort == "-createdAt":
        return [SortKey(Ticket.created_at, True), SortKey(Ticket.id, True)]
    if sort == "priority":  # most urgent first, then most recently updated
        return [
            SortKey(Ticket.priority_weight, True),
            SortKey(Ticket.updated_at, True),
            SortKey(Ticket.id, True),
        ]
    if sort == "dueAt":  # soonest due first, tickets without a due date last
        return [SortKey(DUE_KEY), SortKey(Ticket.id)]
    return [SortKey(Ticket.updated_at, True), SortKey(Ticket.id, True)]


def _key_of(sort: str) -> Any:
    if sort == "-createdAt":
        return lambda r: (r.created_at, r.id)
    if sort == "priority":
        return lambda r: (r.priority_weight, r.updated_at, r.id)
    if sort == "dueAt":
        return lambda r: (NO_DUE_DATE if r.due_at is None else r.due_at, r.id)
    return lambda r: (r.updated_at, r.id)


def _conditions(
    session: AsyncSession, workspace_id: str, agent_id: str, f: TicketFilters
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [
        Ticket.workspace_id == workspace_id,
        Ticket.deleted_at.is_(None),
    ]
    if not f.include_merged:
        where.append(Ticket.merged_into_ticket_id.is_(None))
    if f.status:
        where.append(Ticket.status.in_(f.status))
    if f.priority:
        where.append(Ticket.priority.in_(f.priority))
    if f.assignee_id == "none":
        where.append(Ticket.assignee_id.is_(None))
    elif f.assignee_id:
        where.append(Ticket.assignee_id == (agent_id if f.assignee_id == "me" else f.assignee_id))
    for column, value in (
        (Ticket.team_id, f.team_id),
        (Ticket.category_id, f.category_id),
        (Ticket.user_id, f.user_id),
        (Ticket.company_id, f.company_id),
        (Ticket.mailbox_id, f.mailbox_id),
    ):
        if value:
            where.append(column == value)
    if f.tag:
        where.append(
            Ticket.id.in_(
                select(TicketTag.ticket_id).where(
                    TicketTag.workspace_id == workspace_id, TicketTag.tag == f.tag
                )
            )
        )
    if f.created_after is not None:
        where.append(Ticket.created_at >= f.created_after)
    if f.created_before is not None:
        where.append(Ticket.created_at < f.created_before)
    if f.updated_after is not None:
        where.append(Ticket.updated_at >= f.updated_after)
    if f.updated_before is not None:
        where.append(Ticket.updated_at < f.updated_before)
    if f.q:
        matches = search.matching_ticket_ids(session, workspace_id, f.q)
        if matches is not None:
            where.append(Ticket.id.in_(matches))
    return where


def _decode(cursor: str, arity: int) -> tuple[list[Any], int]:
    """The last row's sort key and the moment the paging started; all integers but the id."""
    values = decode_cursor(cursor, arity + 1)
    *key, as_of = values
    ints_ok = all(isinstance(v, int) and not isinstance(v, bool) for v in [*key[:-1], as_of])
    if not ints_ok or not isinstance(key[-1], str):
        raise ApiError("VALIDATION_ERROR", details=[{"path": "cursor", "message": "bad cursor"}])
    return key, as_of


async def list_tickets(
    session: AsyncSession,
    *,
    workspace_id: str,
    agent_id: str,
    filters: TicketFilters,
    page: PageParams,
) -> Page[TicketSummary]:
    """One page of the inbox: one query (two with `includeTotal`).

    Keyset pagination never lists a ticket twice and never skips one that did not change while
    the client paged. `-updatedAt` keys only grow (`touch`) and `-createdAt` keys never change, so
    the keyset alone guarantees it. `priority` and `dueAt` keys can move back past the cursor:
    the cursor carries the second the first page was read, and later pages leave out tickets
    changed since that second began (they are at the top of the inbox, and real-time events
    bring them).
    """
    keys = _sort_keys(filters.sort)
    stmt = _joined(select(*SUMMARY_COLUMNS)).where(
        and_(*_conditions(session, workspace_id, agent_id, filters))
    )
    total = None
    if page.include_total:
        count = select(func.count()).select_from(stmt.with_only_columns(Ticket.id).subquery())
        total = (await session.execute(count)).scalar_one()
    as_of = now()
    if page.cursor:
        after, as_of = _decode(page.cursor, len(keys))
        stmt = stmt.where(after_condition(keys, after))
        if filters.sort in MOVABLE_SORTS:
            stmt = stmt.where(Ticket.updated_at < as_of)
    order = [k.column.desc() if k.descending else k.column.asc() for k in keys]
    rows = (await session.execute(stmt.order_by(*order).limit(page.limit + 1))).all()
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        next_cursor = encode_cursor([*_key_of(filters.sort)(rows[-1]), as_of])
    return Page([summary_of(r) for r in rows], next_cursor, total)


# ---------------------------------------------------------------- the audit trail


async def list_activities(
    session: AsyncSession, *, workspace_id: str, ticket_id: str, page: PageParams
) -> Page[ActivityOut]:
    """Everything recorded about a ticket, oldest first (ids are time-ordered)."""
    stmt = (
        select(Activity, ActorAgent.display_name)
        .outerjoin(
            ActorAgent,
            and_(Activity.actor_type == "agent", ActorAgent.id == Activity.actor_id),
        )
        .where(
            Activity.workspace_id == workspace_id,
            Activity.subject_type == "ticket",
            Activity.subject_id == ticket_id,
        )
    )
    result = await keyset_page(
        session, stmt, [SortKey(Activity.id)], page, lambda r: (r[0].id,), scalars=False
    )
    items = [
        ActivityOut(
            id=a.id,
            actor={"type": a.actor_type, "id": a.actor_id, "name": name},
            verb=a.verb,
            before=a.before,
            after=a.after,
            created_at=a.created_at,
        )
        for a, name in result.items
    ]
    return Page(items, result.next_cursor, result.total)
