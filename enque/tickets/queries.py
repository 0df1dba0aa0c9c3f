"""Reading tickets: the inbox list, the detail view, summaries for events, the audit trail.

The list is one query per page: the ticket's list columns, its SLA state and the few related
names joined by primary key (never a body), ordered along a composite index led by
`workspace_id`, so the first page and the thousandth cost the same; plus one query for the
page's custom field values. The detail is three queries (ticket with its related rows, SLA state
and body; comment counts; custom field values), whatever the ticket holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, bindparam, exists, func, or_, select
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
from enque.core.runtime import runtime_of
from enque.customers.models import Company, User
from enque.customers.seams import custom_fields_of
from enque.sla.models import NOT_DUE, SLA_DUE_KEY, TicketSla
from enque.teams.models import Team
from enque.tickets import seams, search
from enque.tickets.models import DUE_KEY, NO_DUE_DATE, Ticket, TicketBody, TicketTag
from enque.tickets.schemas import ActivityOut

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
    # the SLA state (`ticket_sla`, kept by the SLA domain; null when no policy applies)
    TicketSla.policy_id.label("sla_policy_id"),
    TicketSla.first_response_due_at,
    TicketSla.next_response_due_at,
    TicketSla.resolution_due_at,
    TicketSla.next_due_at.label("sla_due_at"),
    TicketSla.paused_at.label("sla_paused_at"),
    TicketSla.breached.label("sla_breached"),
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
    """Related names and the SLA state by primary key. Outer joins keep `tickets` the
    driving table."""
    return _names(stmt.select_from(Ticket).outerjoin(TicketSla, TicketSla.ticket_id == Ticket.id))


def _names(stmt: Select[Any]) -> Select[Any]:
    return (
        stmt.outerjoin(User, User.id == Ticket.user_id)
        .outerjoin(Agent, Agent.id == Ticket.assignee_id)
        .outerjoin(Team, Team.id == Ticket.team_id)
        .outerjoin(Category, Category.id == Ticket.category_id)
    )


Summary = dict[str, Any]  # a TicketSummary in its wire shape (camelCase keys)
# the summary columns and their joins, built once (every inbox page starts from it)
SUMMARIES = _joined(select(*SUMMARY_COLUMNS))
# built once: every event about a ticket carries its summary
_SUMMARIES_BY_ID = SUMMARIES.where(
    Ticket.workspace_id == bindparam("workspace_id"),
    Ticket.id.in_(bindparam("ids", expanding=True)),
)


def summary_of(row: Row[Any]) -> Summary:
    """A `TicketSummary` as JSON-ready values, straight from the row (no per-row validation:
    the inbox builds fifty of these per request)."""
    (
        ticket_id,
        number,
        subject,
        status,
        priority,
        _weight,
        tags,
        due_at,
        is_read,
        user_id,
        user_name,
        user_email,
        company_id,
        assignee_id,
        assignee_name,
        team_id,
        team_name,
        category_id,
        category_name,
        category_color,
        mailbox_id,
        first_response_at,
        last_customer_reply_at,
        last_agent_reply_at,
        merged_into,
        created_at,
        updated_at,
        version,
        sla_policy_id,
        first_response_due_at,
        next_response_due_at,
        resolution_due_at,
        sla_due_at,
        sla_paused_at,
        sla_breached,
    ) = row[: len(SUMMARY_COLUMNS)]
    return {
        "id": ticket_id,
        "number": number,
        "subject": subject,
        "status": status,
        "priority": priority,
        "tags": tags or [],
        "dueAt": due_at,
        "isRead": bool(is_read),
        "customer": {"id": user_id, "name": user_name or "", "email": user_email or ""},
        "companyId": company_id,
        "assignee": {"id": assignee_id, "name": assignee_name or ""} if assignee_id else None,
        "team": {"id": team_id, "name": team_name or ""} if team_id else None,
        "category": {"id": category_id, "name": category_name or "", "color": category_color}
        if category_id
        else None,
        "mailboxId": mailbox_id,
        "firstResponseAt": first_response_at,
        "lastCustomerReplyAt": last_customer_reply_at,
        "lastAgentReplyAt": last_agent_reply_at,
        "mergedIntoTicketId": merged_into,
        "createdAt": created_at,
        "updatedAt": updated_at,
        "version": version,
        "slaPolicyId": sla_policy_id,
        "firstResponseDueAt": first_response_due_at,
        "nextResponseDueAt": next_response_due_at,
        "resolutionDueAt": resolution_due_at,
        "slaDueAt": sla_due_at,
        "slaPausedAt": sla_paused_at,
        "slaBreached": list(sla_breached or []),
        "customFields": {},  # filled by `with_custom_fields`, one query per batch
    }


async def with_custom_fields(
    session: AsyncSession, workspace_id: str, items: Sequence[Summary]
) -> None:
    """Fill each summary's `customFields` (one query for all of them)."""
    if not items:
        return
    found = await custom_fields_of(
        session, workspace_id=workspace_id, entity="ticket", entity_ids=[t["id"] for t in items]
    )
    for item in items:
        item["customFields"] = found.get(item["id"], {})


async def summaries(
    session: AsyncSession, workspace_id: str, ticket_ids: Sequence[str]
) -> dict[str, Summary]:
    """List-shaped tickets by id, in one query (for events and bulk results)."""
    if not ticket_ids:
        return {}
    connection = await session.connection()  # plain rows: no ORM compiling or loading
    rows = await connection.execute(
        _SUMMARIES_BY_ID, {"workspace_id": workspace_id, "ids": list(ticket_ids)}
    )
    found = {row.id: summary_of(row) for row in rows}
    await with_custom_fields(session, workspace_id, list(found.values()))
    return found


async def ticket_detail(session: AsyncSession, *, workspace_id: str, ticket_id: str) -> Summary:
    """A `TicketDetail` in its wire shape: three queries, whatever the ticket holds."""
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
    kinds = await session.execute(
        select(Comment.kind, func.count())
        .where(
            Comment.workspace_id == workspace_id,
            Comment.ticket_id == ticket_id,
            Comment.deleted_at.is_(None),
        )
        .group_by(Comment.kind)
    )
    counts: dict[str, int] = {kind: count for kind, count in kinds.tuples()}
    store = seams.attachments(session)
    files = (
        await store.for_bodies(session, workspace_id=workspace_id, ticket_ids=[ticket_id])
        if store is not None
        else {}
    )
    summary = summary_of(row)
    await with_custom_fields(session, workspace_id, [summary])
    return {
        **summary,
        "company": {"id": row.company_id, "name": row.company_name or ""}
        if row.company_id
        else None,
        "cc": row.cc or [],
        "resolvedAt": row.resolved_at,
        "closedAt": row.closed_at,
        "mergedAt": row.merged_at,
        "linkedTicketId": row.linked_ticket_id,
        "deletedAt": row.deleted_at,
        "body": {
            "content": row.sanitized_html or "",
            "text": row.plain_text or "",
            "attachments": files.get(ticket_id, []),
        },
        "counts": {
            "comments": sum(counts.values()),
            "replies": counts.get("reply", 0),
            "notes": counts.get("note", 0),
            "customerMessages": counts.get("customer", 0),
        },
    }


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
    breached: bool | None = None  # an SLA target missed (True) or none missed (False)
    sort: str = "-updatedAt"
    custom_fields: dict[str, Any] = field(default_factory=dict)  # through the seam below


# `async (session, *, workspace_id, filters: {key: value}) -> condition on Ticket`
CUSTOM_FIELD_FILTER = "custom_field_filter"


def custom_field_filters(pairs: list[str]) -> dict[str, Any]:
    """`["plan:gold", "seats:10"]` → `{"plan": "gold", "seats": "10"}` (422 without a colon)."""
    found: dict[str, Any] = {}
    for i, pair in enumerate(pairs):
        key, colon, value = pair.partition(":")
        if not colon or not key:
            raise ApiError(
                "VALIDATION_ERROR", details=[{"path": f"cf.{i}", "message": "key:value"}]
            )
        found[key] = value
    return found


COMMON_TAG = 2000  # tickets carrying a tag above which SQLite walks the list index
# sorts whose key a change can move backwards (a priority lowered, a due date postponed)
MOVABLE_SORTS = frozenset({"priority", "dueAt"})
SLA_SORT = "slaDue"  # tickets with an SLA target pending, soonest first; then the others
REST_KEYS = [SortKey(Ticket.updated_at, True), SortKey(Ticket.id, True)]


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


async def _tagged(session: AsyncSession, workspace_id: str, tag: str) -> ColumnElement[bool]:
    """The `tag` filter. PostgreSQL's planner picks between walking the list index and probing
    `ticket_tags`, or reading the tag's tickets and sorting them, from its statistics. SQLite
    takes the first plan when the tag is common and the second when it is rare, so it is told
    which: one index-only count, capped."""
    tagged = select(TicketTag.ticket_id).where(
        TicketTag.workspace_id == workspace_id, TicketTag.tag == tag
    )
    if search.is_sqlite(session):
        capped = select(func.count()).select_from(tagged.limit(COMMON_TAG).subquery())
        if (await session.execute(capped)).scalar_one() >= COMMON_TAG:
            return exists().where(TicketTag.ticket_id == Ticket.id, TicketTag.tag == tag)
    return Ticket.id.in_(tagged)


@dataclass
class Where:
    """The inbox filters as conditions whose values are bound parameters, so the statement of
    one shape of filters is built once and run with each request's values. Conditions are
    made only when a statement is built (`clauses`); the shape and values are all a request
    with a known shape needs."""

    params: dict[str, Any] = field(default_factory=dict)
    shape: list[str] = field(default_factory=list)
    reusable: bool = True  # False: a condition carries its values (search, tags, fields)
    _makers: list[Callable[[], ColumnElement[bool]]] = field(default_factory=list)

    def add(self, name: str, make: Callable[[], ColumnElement[bool]], value: Any = None) -> None:
        self._makers.append(make)
        self.shape.append(name)
        if value is not None:
            self.params[name] = value

    def add_built(self, clause: ColumnElement[bool]) -> None:
        self._makers.append(lambda: clause)
        self.reusable = False

    @property
    def clauses(self) -> list[ColumnElement[bool]]:
        return [make() for make in self._makers]


def _equals(column: Any, name: str) -> Callable[[], ColumnElement[bool]]:
    return lambda: column == _param(name)


def _at_least(column: Any, name: str) -> Callable[[], ColumnElement[bool]]:
    return lambda: column >= _param(name)


def _below(column: Any, name: str) -> Callable[[], ColumnElement[bool]]:
    return lambda: column < _param(name)


def _param(name: str, *, expanding: bool = False, type_: Any = None) -> Any:
    """A required parameter: running a statement without its value fails, never reuses one."""
    return bindparam(name, expanding=expanding, required=True, type_=type_)


async def _conditions(
    session: AsyncSession, workspace_id: str, agent_id: str, f: TicketFilters
) -> Where:
    where = Where()
    where.add("ws", lambda: Ticket.workspace_id == _param("ws"), workspace_id)
    where.add("live", lambda: Ticket.deleted_at.is_(None))
    if not f.include_merged:
        where.add("unmerged", lambda: Ticket.merged_into_ticket_id.is_(None))
    if f.status:
        where.add("status", lambda: Ticket.status.in_(_param("status", expanding=True)), f.status)
    if f.priority:
        where.add(
            "priority", lambda: Ticket.priority.in_(_param("priority", expanding=True)), f.priority
        )
    if f.assignee_id == "none":
        where.add("unassigned", lambda: Ticket.assignee_id.is_(None))
    elif f.assignee_id:
        assignee = agent_id if f.assignee_id == "me" else f.assignee_id
        where.add("assignee", lambda: Ticket.assignee_id == _param("assignee"), assignee)
    for name, column, value in (
        ("team", Ticket.team_id, f.team_id),
        ("category", Ticket.category_id, f.category_id),
        ("user", Ticket.user_id, f.user_id),
        ("company", Ticket.company_id, f.company_id),
        ("mailbox", Ticket.mailbox_id, f.mailbox_id),
    ):
        if value:
            where.add(name, _equals(column, name), value)
    if f.tag:
        where.add_built(await _tagged(session, workspace_id, f.tag))
    for name, moment, since, until in (
        ("created", Ticket.created_at, f.created_after, f.created_before),
        ("updated", Ticket.updated_at, f.updated_after, f.updated_before),
    ):
        if since is not None:
            where.add(f"{name}_after", _at_least(moment, f"{name}_after"), since)
        if until is not None:
            where.add(f"{name}_before", _below(moment, f"{name}_before"), until)
    if f.breached is True:  # the outer-joined SLA state; no state is not breached
        where.add("breached", lambda: TicketSla.is_breached.is_(True))
    elif f.breached is False:
        where.add("not_breached", lambda: TicketSla.is_breached.is_not(True))
    if f.custom_fields:
        condition = runtime_of(session).services.get(CUSTOM_FIELD_FILTER)
        if condition is None:
            raise ApiError("VALIDATION_ERROR", details=[{"path": "cf", "message": "no fields"}])
        where.add_built(
            await condition(session, workspace_id=workspace_id, filters=f.custom_fields)
        )
    if f.q:
        matches = await search.search_condition(session, workspace_id, f.q)
        if matches is not None:
            where.add_built(matches)
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
) -> Page[Summary]:
    """One page of the inbox: one query, plus one for the page's custom field values (and
    one more with `includeTotal`; `slaDue` may take two where its two parts meet).

    Keyset pagination never lists a ticket twice and never skips one that did not change while
    the client paged. `-updatedAt` keys only grow (`touch`) and `-createdAt` keys never change, so
    the keyset alone guarantees it. `priority`, `dueAt` and `slaDue` keys can move back past the
    cursor: the cursor carries the second the first page was read, and later pages leave out
    tickets changed since that second began (they are at the top of the inbox, and real-time
    events bring them).
    """
    where = await _conditions(session, workspace_id, agent_id, filters)
    total = None
    if page.include_total:
        base = _joined(select(Ticket.id)).where(*where.clauses)
        counted = select(func.count()).select_from(base.subquery())
        total = (await session.execute(counted, where.params)).scalar_one()
    as_of, after = now(), None
    if filters.sort == SLA_SORT:
        if page.cursor:
            after, as_of = _decode(page.cursor, 3)
            if after[0] not in (0, 1):
                raise ApiError(
                    "VALIDATION_ERROR", details=[{"path": "cursor", "message": "bad cursor"}]
                )
        rows, next_key = await _sla_due_page(session, workspace_id, where, page.limit, after, as_of)
    else:
        keys = _sort_keys(filters.sort)
        params = {**where.params, "page_limit": page.limit + 1}
        if page.cursor:
            after, as_of = _decode(page.cursor, len(keys))
            params.update({f"after_{i}": value for i, value in enumerate(after)}, as_of=as_of)
        stmt = _page_statement(filters.sort, keys, where, bool(page.cursor))
        # a Core execution: plain rows, without the ORM's per-row loading (half the cost)
        connection = await session.connection()
        rows = list((await connection.execute(stmt, params)).all())
        next_key = None
        if len(rows) > page.limit:
            rows = rows[: page.limit]
            next_key = list(_key_of(filters.sort)(rows[-1]))
    items = [summary_of(r) for r in rows]
    await with_custom_fields(session, workspace_id, items)
    next_cursor = encode_cursor([*next_key, as_of]) if next_key is not None else None
    return Page(items, next_cursor, total)


_PAGE_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}
MAX_PAGE_STATEMENTS = 512  # shapes of filters seen; each one is a few KB


def _page_statement(sort: str, keys: list[SortKey], where: Where, paging: bool) -> Select[Any]:
    """The inbox statement of this sort and shape of filters, built once per shape."""
    shape = (sort, paging, *where.shape) if where.reusable else None
    if shape is not None and (known := _PAGE_STATEMENTS.get(shape)) is not None:
        return known
    stmt = SUMMARIES.where(*where.clauses)
    if paging:
        after = [_param(f"after_{i}", type_=key.column.type) for i, key in enumerate(keys)]
        stmt = stmt.where(after_condition(keys, after))
        if sort in MOVABLE_SORTS:
            stmt = stmt.where(Ticket.updated_at < _param("as_of"))
    order = [k.column.desc() if k.descending else k.column.asc() for k in keys]
    stmt = stmt.order_by(*order).limit(_param("page_limit"))
    if shape is not None:
        if len(_PAGE_STATEMENTS) >= MAX_PAGE_STATEMENTS:
            _PAGE_STATEMENTS.clear()
        _PAGE_STATEMENTS[shape] = stmt
    return stmt


async def _sla_due_page(
    session: AsyncSession,
    workspace_id: str,
    filters: Where,
    limit: int,
    after: list[Any] | None,
    as_of: int,
) -> tuple[list[Row[Any]], list[Any] | None]:
    """`slaDue`: first the tickets with an SLA target pending, soonest due first (a walk of
    `ticket_sla`'s due index), then the others, most recently updated first (a walk of the
    inbox index). The cursor key is `[0, due, id]` in the first part, `[1, updatedAt, id]` in
    the second. Later pages leave out tickets whose row or SLA state changed since `as_of`."""
    where = filters.clauses
    if after is not None:
        where = [
            *where,
            Ticket.updated_at < as_of,
            or_(TicketSla.updated_at.is_(None), TicketSla.updated_at < as_of),
        ]
    rows: list[tuple[int, Row[Any]]] = []
    if after is None or after[0] == 0:
        due = (
            _names(
                select(*SUMMARY_COLUMNS)
                .select_from(TicketSla)
                .join(Ticket, Ticket.id == TicketSla.ticket_id)
            )
            .where(TicketSla.workspace_id == workspace_id, SLA_DUE_KEY < NOT_DUE, *where)
            .order_by(SLA_DUE_KEY, TicketSla.ticket_id)
            .limit(limit + 1)
        )
        if after is not None:  # spelled out, so SQLite bounds the index walk on both sides
            _, due_at, ticket_id = after
            due_key = SLA_DUE_KEY
            due = due.where(
                due_key >= due_at, or_(due_key > due_at, TicketSla.ticket_id > ticket_id)
            )
        rows = [(0, r) for r in (await session.execute(due, filters.params)).all()]
    if len(rows) <= limit:
        rest = SUMMARIES.where(TicketSla.next_due_at.is_(None), *where)
        if after is not None and after[0] == 1:
            rest = rest.where(after_condition(REST_KEYS, after[1:]))
        rest = rest.order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        listed = {r.id for _, r in rows}  # a ticket whose due went away between the two reads
        found = await session.execute(
            rest.limit(limit + 1 - len(rows) + len(listed)), filters.params
        )
        rows += [(1, r) for r in found.all() if r.id not in listed]
    if len(rows) <= limit:
        return [r for _, r in rows], None
    part, last = rows[limit - 1]
    key = [0, last.sla_due_at, last.id] if part == 0 else [1, last.updated_at, last.id]
    return [r for _, r in rows[:limit]], key


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
