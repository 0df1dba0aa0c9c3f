"""Ticket changes: create, update (optimistic concurrency), bulk, delete and restore.

Every function takes the acting `Actor` (an agent, a customer through email, the system or an
automation rule), writes in one unit of work, records the audit rows and emits the events after
commit. Reads live in `queries.py`, merging in `merge.py`, search documents in `search.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from enque.activity.service import Actor, record
from enque.agents.models import Agent, AgentWorkspace
from enque.categories.models import Category
from enque.core.db import insert_on_conflict, now, unit
from enque.core.errors import ApiError, conflict, not_found, validation_error
from enque.core.events import Event, emit
from enque.core.html import html_to_text, sanitize_html
from enque.customers.models import User
from enque.customers.seams import write_custom_fields
from enque.customers.service import find_or_create_customer
from enque.teams.models import Team
from enque.tickets import seams, search
from enque.tickets.models import Ticket, TicketBody, TicketCounter, TicketTag
from enque.tickets.queries import Summary, summaries, ticket_detail
from enque.tickets.schemas import BulkResult

CHANGEABLE = (
    "subject",
    "status",
    "priority",
    "assignee_id",
    "team_id",
    "category_id",
    "tags",
    "due_at",
    "is_read",
)
BULK_CHANGEABLE = frozenset({"status", "assignee_id", "team_id", "priority", "category_id"})
NOT_NULL = frozenset({"subject", "status", "priority", "tags", "is_read"})
REFERENCES = frozenset({"assignee_id", "team_id", "category_id"})  # changeable ids
# audit verbs for fields that reports and notifications look for by name
FIELD_VERBS = {"status": "ticket.status_changed", "assigneeId": "ticket.assigned"}
# a custom field's key in `ticket.updated` changes: `customFields.<key>` (audited by the custom
# fields domain as `custom_fields.updated`)
CUSTOM_CHANGE = "customFields."


def channels(ticket_id: str) -> list[str]:
    return ["tickets", f"ticket:{ticket_id}"]


def addresses(values: Iterable[str]) -> list[str]:
    """Email addresses without duplicates (compared case-insensitively), domains in lower case."""
    seen: dict[str, str] = {}
    for value in values:
        local, _, domain = value.strip().rpartition("@")
        address = f"{local}@{domain.lower()}" if local else value.strip()
        seen.setdefault(address.lower(), address)
    return list(seen.values())


def touch(ticket: Ticket) -> int:
    """Move `updated_at` forward (never back, so a keyset cursor never sees a ticket twice)."""
    moment = max(now(), ticket.updated_at or 0)
    ticket.updated_at = moment
    return moment


# ---------------------------------------------------------------- lookups


async def get_ticket(
    session: AsyncSession, *, workspace_id: str, ticket_id: str, lock: bool = False
) -> Ticket:
    """The ticket (also deleted or merged ones); `lock` holds its row until commit."""
    stmt = select(Ticket).where(Ticket.workspace_id == workspace_id, Ticket.id == ticket_id)
    if lock:
        stmt = stmt.with_for_update()
    ticket = (await session.execute(stmt)).scalar_one_or_none()
    if ticket is None:
        raise not_found("Ticket")
    return ticket


async def ticket_exists(session: AsyncSession, *, workspace_id: str, ticket_id: str) -> bool:
    """Whether the ticket is in the workspace (deleted and merged ones too)."""
    stmt = select(Ticket.id).where(Ticket.workspace_id == workspace_id, Ticket.id == ticket_id)
    return (await session.execute(stmt)).first() is not None


async def ticket_by_number(
    session: AsyncSession, *, workspace_id: str, number: int
) -> Ticket | None:
    """The ticket a subject token (`[#1042]`, legacy `[ID:1042]`) names, in this workspace."""
    stmt = select(Ticket).where(Ticket.workspace_id == workspace_id, Ticket.number == number)
    return (await session.execute(stmt)).scalar_one_or_none()


async def ticket_by_conversation(
    session: AsyncSession, *, workspace_id: str, mailbox_id: str, conversation_id: str
) -> Ticket | None:
    """The newest ticket of a mail conversation (Graph `conversationId`) in this mailbox."""
    stmt = (
        select(Ticket)
        .where(
            Ticket.workspace_id == workspace_id,
            Ticket.conversation_id == conversation_id,
            Ticket.mailbox_id == mailbox_id,
        )
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_tickets(
    session: AsyncSession, workspace_id: str, ids: Iterable[str]
) -> dict[str, Ticket]:
    """Several tickets, their rows locked in id order (no deadlock between two bulk changes)."""
    stmt = (
        select(Ticket)
        .where(Ticket.workspace_id == workspace_id, Ticket.id.in_(list(ids)))
        .order_by(Ticket.id)
        .with_for_update()
    )
    return {t.id: t for t in (await session.execute(stmt)).scalars()}


def ensure_open_for_change(ticket: Ticket) -> None:
    if ticket.deleted_at is not None:
        raise conflict("The ticket is deleted; restore it first")
    if ticket.merged_into_ticket_id is not None:
        raise conflict(
            "The ticket was merged into another one",
            {"mergedIntoTicketId": ticket.merged_into_ticket_id},
        )


async def active_agent_ids(
    session: AsyncSession, workspace_id: str, agent_ids: Iterable[str]
) -> set[str]:
    """Those of `agent_ids` that are active members of the workspace."""
    wanted = list(set(agent_ids))
    if not wanted:
        return set()
    rows = await session.execute(
        select(AgentWorkspace.agent_id)
        .join(Agent, Agent.id == AgentWorkspace.agent_id)
        .where(
            AgentWorkspace.workspace_id == workspace_id,
            AgentWorkspace.agent_id.in_(wanted),
            AgentWorkspace.is_active.is_(True),
            Agent.is_active.is_(True),
        )
    )
    return set(rows.scalars())


async def _exists(session: AsyncSession, stmt: Any) -> bool:
    return (await session.execute(stmt.limit(1))).first() is not None


async def _live_customer(session: AsyncSession, workspace_id: str, user_id: str) -> bool:
    """Whether the customer is live in the workspace; one the session holds already (the
    sender of an incoming message, just found or created) is judged without a query."""
    known = session.identity_map.get(session.identity_key(User, user_id))
    if isinstance(known, User):
        return known.workspace_id == workspace_id and known.deleted_at is None
    return await _exists(
        session,
        select(User.id).where(
            User.workspace_id == workspace_id, User.id == user_id, User.deleted_at.is_(None)
        ),
    )


async def check_references(
    session: AsyncSession, workspace_id: str, fields: dict[str, Any]
) -> None:
    """Ids named in a change must be live in this workspace (422 otherwise, never a leak)."""
    if fields.get("assignee_id") and not await active_agent_ids(
        session, workspace_id, [fields["assignee_id"]]
    ):
        raise validation_error("assigneeId", "no such agent in this workspace")
    if fields.get("team_id") and not await _exists(
        session,
        select(Team.id).where(
            Team.workspace_id == workspace_id,
            Team.id == fields["team_id"],
            Team.deleted_at.is_(None),
        ),
    ):
        raise validation_error("teamId", "no such team in this workspace")
    if fields.get("category_id") and not await _exists(
        session,
        select(Category.id).where(
            Category.workspace_id == workspace_id,
            Category.id == fields["category_id"],
            Category.deleted_at.is_(None),
        ),
    ):
        raise validation_error("categoryId", "no such category in this workspace")
    if fields.get("user_id") and not await _live_customer(session, workspace_id, fields["user_id"]):
        raise validation_error("userId", "no such customer in this workspace")
    if fields.get("mailbox_id"):
        await seams.check_mailbox(session, workspace_id, fields["mailbox_id"])


# ---------------------------------------------------------------- writing


# built once, run on the session's connection as a plain statement: every new ticket bumps it
_BUMP = (
    update(TicketCounter)
    .where(TicketCounter.workspace_id == bindparam("counter_workspace"))
    .values(last_number=TicketCounter.last_number + bindparam("counter_count"))
    .returning(TicketCounter.last_number)
)


async def allocate_numbers(session: AsyncSession, workspace_id: str, count: int = 1) -> range:
    """The next `count` ticket numbers of the workspace, in one statement. The counter row
    stays locked until commit, so concurrent creators queue on it and no number is ever given
    twice."""
    connection = await session.connection()
    key = {"counter_workspace": workspace_id, "counter_count": count}
    last = (await connection.execute(_BUMP, key)).scalar_one_or_none()
    if last is None:
        await session.execute(
            insert_on_conflict(session, TicketCounter)
            .values(workspace_id=workspace_id, last_number=0)
            .on_conflict_do_nothing(index_elements=["workspace_id"])
        )
        last = (await connection.execute(_BUMP, key)).scalar_one()
    return range(int(last) - count + 1, int(last) + 1)


async def set_tags(session: AsyncSession, ticket: Ticket, tags: Sequence[str]) -> None:
    """Set the tag list and its index rows."""
    wanted = list(dict.fromkeys(tags))
    current = set(ticket.tags or [])
    gone = current - set(wanted)
    if gone:
        await session.execute(
            delete(TicketTag).where(TicketTag.ticket_id == ticket.id, TicketTag.tag.in_(gone))
        )
    session.add_all(
        TicketTag(workspace_id=ticket.workspace_id, ticket_id=ticket.id, tag=tag)
        for tag in wanted
        if tag not in current
    )
    ticket.tags = wanted


def _set_status(ticket: Ticket, status: str, moment: int) -> None:
    """Closing stamps `closed_at` (and `resolved_at` the first time); reopening clears
    `closed_at` and keeps `resolved_at`, the first resolution."""
    if status == ticket.status:
        return
    if status == "Closed":
        ticket.closed_at = moment
        ticket.resolved_at = ticket.resolved_at or moment
    elif ticket.status == "Closed":
        ticket.closed_at = None
    ticket.status = status


async def apply_changes(
    session: AsyncSession, ticket: Ticket, changes: dict[str, Any]
) -> dict[str, list[Any]]:
    """Write `changes` onto the ticket; returns `{camelField: [old, new]}` of what changed.

    Marking an `Unread` ticket read (`isRead: true`) opens it (`Open`).
    """
    for key, value in changes.items():
        if value is None and key in NOT_NULL:
            raise validation_error(to_camel(key), "may not be null")
    before = {key: getattr(ticket, key) for key in CHANGEABLE}
    before["closed_at"], before["resolved_at"] = ticket.closed_at, ticket.resolved_at
    moment = now()
    if changes.get("status") == "Closed" and ticket.status != "Closed":
        await seams.run_close_checks(session, ticket)
    for key in CHANGEABLE:
        if key not in changes or changes[key] == getattr(ticket, key):
            continue
        if key == "status":
            _set_status(ticket, changes[key], moment)
        elif key == "tags":
            await set_tags(session, ticket, changes[key])
        else:
            setattr(ticket, key, changes[key])
    if changes.get("is_read") and ticket.status == "Unread" and "status" not in changes:
        _set_status(ticket, "Open", moment)
    diff = {
        to_camel(key): [old, getattr(ticket, key)]
        for key, old in before.items()
        if getattr(ticket, key) != old
    }
    if diff:
        touch(ticket)
    return diff


def record_changes(
    session: AsyncSession, ticket: Ticket, diff: dict[str, list[Any]], actor: Actor
) -> None:
    """Audit rows for a change: status and assignee under their own verbs, the rest together."""
    rest = {
        k: v
        for k, v in diff.items()
        if k not in FIELD_VERBS and k != "updatedAt" and not k.startswith(CUSTOM_CHANGE)
    }
    for field_name, verb in FIELD_VERBS.items():
        if field_name in diff:
            old, new = diff[field_name]
            record(
                session,
                workspace_id=ticket.workspace_id,
                actor=actor,
                verb=verb,
                subject_type="ticket",
                subject_id=ticket.id,
                before={field_name: old},
                after={field_name: new},
            )
    if rest:
        record(
            session,
            workspace_id=ticket.workspace_id,
            actor=actor,
            verb="ticket.updated",
            subject_type="ticket",
            subject_id=ticket.id,
            before={k: v[0] for k, v in rest.items()},
            after={k: v[1] for k, v in rest.items()},
        )


def emit_updated(
    session: AsyncSession,
    ticket: Ticket,
    diff: dict[str, list[Any]],
    summary: Summary,
    actor: Actor,
) -> None:
    payload = {"id": ticket.id, "changes": diff, "ticket": summary}
    emit(
        session,
        Event(
            "ticket.updated",
            ticket.workspace_id,
            payload,
            channels=channels(ticket.id),
            actor=actor.as_dict(),
        ),
    )


async def flush(session: AsyncSession) -> None:
    """Flush, turning a lost optimistic-lock race into 409."""
    try:
        await session.flush()
    except StaleDataError as exc:
        raise conflict("The ticket was changed by someone else; reload it") from exc


async def publish_changes(
    session: AsyncSession, ticket: Ticket, diff: dict[str, list[Any]], actor: Actor
) -> None:
    """After `apply_changes`: flush, audit, search document, `ticket.updated`."""
    await flush(session)
    if not diff:
        return
    record_changes(session, ticket, diff, actor)
    if "subject" in diff:
        await search.reindex_tickets(session, ticket.workspace_id, [ticket.id])
    summary = (await summaries(session, ticket.workspace_id, [ticket.id]))[ticket.id]
    emit_updated(session, ticket, diff, summary, actor)


@dataclass
class NewTicket:
    """One ticket of `create_tickets` (the arguments of `create_ticket`). `id` may be given
    beforehand, so that a caller creating several can refer to one before it is written."""

    actor: Actor
    subject: str
    body: str = ""
    user_id: str | None = None
    customer_email: str | None = None
    customer_name: str | None = None
    priority: str = "Medium"
    status: str | None = None
    assignee_id: str | None = None
    team_id: str | None = None
    category_id: str | None = None
    tags: Sequence[str] = ()
    due_at: int | None = None
    mailbox_id: str | None = None
    is_read: bool | None = None
    cc: Sequence[str] = ()
    conversation_id: str | None = None
    root_message_id: str | None = None
    linked_ticket_id: str | None = None
    custom_fields: dict[str, Any] | None = None
    id: str | None = None


async def create_ticket(session: AsyncSession, *, workspace_id: str, ticket: NewTicket) -> Ticket:
    """A new ticket: `create_tickets` with one."""
    return (await create_tickets(session, workspace_id=workspace_id, items=[ticket]))[0]


async def _check_all(session: AsyncSession, workspace_id: str, items: Sequence[NewTicket]) -> None:
    """`check_references` of every item, each distinct (field, id) looked up once."""
    checked: set[tuple[str, str]] = set()
    for item in items:
        refs = {
            "assignee_id": item.assignee_id,
            "team_id": item.team_id,
            "category_id": item.category_id,
            "mailbox_id": item.mailbox_id,
            "user_id": item.user_id,
        }
        wanted = {k: v for k, v in refs.items() if v and (k, v) not in checked}
        await check_references(session, workspace_id, wanted)
        checked.update(wanted.items())


async def _customer_of(session: AsyncSession, workspace_id: str, item: NewTicket) -> User:
    if item.user_id:
        return await session.get_one(User, item.user_id)
    if item.customer_email:
        return await find_or_create_customer(
            session, workspace_id, item.customer_email, item.customer_name, actor=item.actor
        )
    raise validation_error("userId", "give userId or customer")


async def create_tickets(
    session: AsyncSession, *, workspace_id: str, items: Sequence[NewTicket]
) -> list[Ticket]:
    """New tickets with their bodies (`body` is HTML, kept as given and sanitized for display),
    in one transaction and a constant number of statements for all of them (numbers as one
    range, one insert per table, one search rebuild, one summary read for the events).

    The customer is `user_id`, or found or created by `customer_email`. An agent's ticket
    starts `Open` and read; anyone else's (a customer by email) starts `Unread`.
    `custom_fields` are checked against their definitions (422 writes nothing); a ticket
    created `Closed` passes the close checks (fields required on close) like a closing one.
    """
    if not items:
        return []
    async with unit(session):
        await _check_all(session, workspace_id, items)
        users = [await _customer_of(session, workspace_id, item) for item in items]
        numbers = await allocate_numbers(session, workspace_id, len(items))
        moment = now()
        created: list[Ticket] = []
        for item, user, number in zip(items, users, numbers, strict=True):
            by_agent = item.actor.type == "agent"
            ticket = Ticket(
                workspace_id=workspace_id,
                number=number,
                subject=item.subject,
                status="Unread",
                priority=item.priority,
                user_id=user.id,
                company_id=user.company_id,
                assignee_id=item.assignee_id,
                team_id=item.team_id,
                category_id=item.category_id,
                mailbox_id=item.mailbox_id,
                tags=list(dict.fromkeys(item.tags)),
                cc=addresses(item.cc),
                due_at=item.due_at,
                is_read=by_agent if item.is_read is None else item.is_read,
                last_customer_reply_at=None if by_agent else moment,
                conversation_id=item.conversation_id,
                root_message_id=item.root_message_id,
                linked_ticket_id=item.linked_ticket_id,
                created_at=moment,
                updated_at=moment,
            )
            if item.id is not None:
                ticket.id = item.id
            _set_status(ticket, item.status or ("Open" if by_agent else "Unread"), moment)
            created.append(ticket)
        session.add_all(created)
        await session.flush()
        for item, ticket in zip(items, created, strict=True):
            sanitized = sanitize_html(item.body)
            session.add(
                TicketBody(
                    workspace_id=workspace_id,
                    ticket_id=ticket.id,
                    original_html=item.body,
                    sanitized_html=sanitized,
                    plain_text=html_to_text(sanitized),
                )
            )
            session.add_all(
                TicketTag(workspace_id=workspace_id, ticket_id=ticket.id, tag=t)
                for t in ticket.tags
            )
        await session.flush()
        for item, ticket in zip(items, created, strict=True):
            await write_custom_fields(
                session,
                workspace_id=workspace_id,
                actor=item.actor,
                entity="ticket",
                entity_id=ticket.id,
                values=item.custom_fields,
            )
            if ticket.status == "Closed":
                await seams.run_close_checks(session, ticket)
        ids = [ticket.id for ticket in created]
        await search.reindex_tickets(session, workspace_id, ids)
        found = await summaries(session, workspace_id, ids)
        for item, ticket in zip(items, created, strict=True):
            record(
                session,
                workspace_id=workspace_id,
                actor=item.actor,
                verb="ticket.created",
                subject_type="ticket",
                subject_id=ticket.id,
                after={
                    "number": ticket.number,
                    "subject": item.subject,
                    "status": ticket.status,
                    "priority": item.priority,
                    "userId": ticket.user_id,
                },
            )
            emit(
                session,
                Event(
                    "ticket.created",
                    workspace_id,
                    found[ticket.id],
                    channels=channels(ticket.id),
                    actor=item.actor.as_dict(),
                ),
            )
    return created


async def update_ticket(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    ticket_id: str,
    changes: dict[str, Any],
    expected_version: int | None = None,
) -> Ticket:
    """Change fields of a ticket. With `expected_version`, a ticket changed since that version
    is refused with 409 and nothing is written. `custom_fields` (`{key: value}`, null clears)
    are written first, so a change to `Closed` sees them in its close checks; a change of
    their values is a change of the ticket (a new version), listed as `customFields.<key>`
    in the one `ticket.updated` of the whole change."""
    values = changes.get("custom_fields")
    changes = {k: v for k, v in changes.items() if k in CHANGEABLE}
    async with unit(session):
        ticket = await get_ticket(
            session, workspace_id=workspace_id, ticket_id=ticket_id, lock=True
        )
        if expected_version is not None and expected_version != ticket.version:
            raise conflict(
                "The ticket was changed by someone else; reload it",
                {"version": ticket.version},
            )
        ensure_open_for_change(ticket)
        await check_references(session, workspace_id, changes)
        custom = await write_custom_fields(
            session,
            workspace_id=workspace_id,
            actor=actor,
            entity="ticket",
            entity_id=ticket.id,
            values=values,
        )
        diff = await apply_changes(session, ticket, changes)
        if custom:
            touch(ticket)
            flag_modified(ticket, "updated_at")  # a new version even within the same second
            diff.update({f"{CUSTOM_CHANGE}{key}": span for key, span in custom.items()})
        await publish_changes(session, ticket, diff, actor)
    return ticket


@dataclass(frozen=True)
class AttributedChange:
    """One change among several made together by different actors (the rules of one
    automation pass): `field` is a changeable field, or `add_tag` / `remove_tag` (`value` is
    the tag, compared case-insensitively)."""

    field: str
    value: Any
    actor: Actor


def _fields_of(ticket: Ticket, change: AttributedChange) -> dict[str, Any]:
    """The change as `apply_changes` takes it, against the ticket as it is now."""
    if change.field in ("add_tag", "remove_tag"):
        tags = list(ticket.tags or [])
        key = str(change.value).casefold()
        kept = [t for t in tags if t.casefold() != key]
        if change.field == "remove_tag":
            return {"tags": kept} if len(kept) < len(tags) else {}
        return {} if len(kept) < len(tags) else {"tags": [*tags, change.value]}
    if change.field not in CHANGEABLE:
        raise validation_error(to_camel(change.field), "cannot be changed")
    return {change.field: change.value}


def _spans(steps: Sequence[tuple[Actor, dict[str, list[Any]]]]) -> dict[str, list[Any]]:
    """Successive diffs as one: each field from its first old value to its last new one."""
    merged: dict[str, list[Any]] = {}
    for _, diff in steps:
        for key, (old, new) in diff.items():
            merged[key] = [merged[key][0] if key in merged else old, new]
    return {key: span for key, span in merged.items() if span[0] != span[1]}


def _runs_by_actor(
    steps: Sequence[tuple[Actor, dict[str, list[Any]]]],
) -> list[tuple[Actor, dict[str, list[Any]]]]:
    """Consecutive steps of one actor, merged: one audit entry each."""
    runs: list[tuple[Actor, list[tuple[Actor, dict[str, list[Any]]]]]] = []
    for step in steps:
        if runs and runs[-1][0] == step[0]:
            runs[-1][1].append(step)
        else:
            runs.append((step[0], [step]))
    return [(actor, _spans(group)) for actor, group in runs]


async def update_tickets_attributed(
    session: AsyncSession,
    *,
    workspace_id: str,
    changes: Mapping[str, Sequence[AttributedChange]],
) -> dict[str, list[ApiError | None]]:
    """Each ticket's changes, by several actors, as ONE update of it: one version, one
    `ticket.updated` listing every change (its actor: the first change's), and audit entries
    naming the actor of each change. Returns, per ticket and in order, None for an applied
    change or the error that refused it: a refused change (a reference that is gone, close
    checks) is left out and the others apply; a deleted, merged or unknown ticket refuses all.
    """
    results: dict[str, list[ApiError | None]] = {}
    steps: dict[str, list[tuple[Actor, dict[str, list[Any]]]]] = {}
    checked: dict[tuple[str, str], ApiError | None] = {}  # the same reference, checked once

    async def check_once(key: str, value: str) -> None:
        """`check_references` for one field; each (field, value) looked up once per call."""
        if (key, value) not in checked:
            try:
                await check_references(session, workspace_id, {key: value})
                checked[key, value] = None
            except ApiError as err:
                checked[key, value] = err
        if (refused := checked[key, value]) is not None:
            raise refused

    async def apply_one(ticket: Ticket, change: AttributedChange) -> ApiError | None:
        try:
            fields = _fields_of(ticket, change)
            for key, value in fields.items():
                if key in REFERENCES and value:
                    await check_once(key, value)
            diff = await apply_changes(session, ticket, fields)
        except ApiError as err:
            return err
        if diff:
            steps.setdefault(ticket.id, []).append((change.actor, diff))
        return None

    async with unit(session):
        tickets = await lock_tickets(session, workspace_id, changes)
        for ticket_id, wanted in changes.items():
            ticket = tickets.get(ticket_id)
            try:
                if ticket is None:
                    raise not_found("Ticket")
                ensure_open_for_change(ticket)
            except ApiError as err:
                results[ticket_id] = [err] * len(wanted)
                continue
            results[ticket_id] = [await apply_one(ticket, change) for change in wanted]
        await flush(session)
        renamed = [t for t, done in steps.items() if any("subject" in d for _, d in done)]
        if renamed:
            await search.reindex_tickets(session, workspace_id, renamed)
        found = await summaries(session, workspace_id, list(steps))
        for ticket_id, done in steps.items():
            ticket = tickets[ticket_id]
            for actor, diff in _runs_by_actor(done):
                record_changes(session, ticket, diff, actor)
            emit_updated(session, ticket, _spans(done), found[ticket_id], done[0][0])
    return results


async def bulk_update(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    ticket_ids: Sequence[str],
    changes: dict[str, Any],
) -> list[BulkResult]:
    """The same change on many tickets in one transaction; one result per id."""
    changes = {k: v for k, v in changes.items() if k in BULK_CHANGEABLE}
    ids = list(dict.fromkeys(ticket_ids))
    results: dict[str, BulkResult] = {}
    diffs: dict[str, dict[str, list[Any]]] = {}
    async with unit(session):
        await check_references(session, workspace_id, changes)
        tickets = await lock_tickets(session, workspace_id, ids)
        for ticket_id in ids:
            ticket = tickets.get(ticket_id)
            try:
                if ticket is None:
                    raise not_found("Ticket")
                ensure_open_for_change(ticket)
            except ApiError as err:
                results[ticket_id] = BulkResult(
                    id=ticket_id, success=False, error={"code": err.code, "message": err.message}
                )
                continue
            diffs[ticket_id] = await apply_changes(session, ticket, changes)
        await flush(session)
        changed = await summaries(session, workspace_id, list(diffs))
        for ticket_id, diff in diffs.items():
            if diff:
                record_changes(session, tickets[ticket_id], diff, actor)
                emit_updated(session, tickets[ticket_id], diff, changed[ticket_id], actor)
            results[ticket_id] = BulkResult.model_validate(
                {"id": ticket_id, "success": True, "ticket": changed[ticket_id]}
            )
    return [results[i] for i in ids]


async def delete_ticket(
    session: AsyncSession, *, workspace_id: str, actor: Actor, ticket_id: str
) -> None:
    """Soft delete: out of lists and search, restorable. Deleting twice changes nothing."""
    async with unit(session):
        ticket = await get_ticket(
            session, workspace_id=workspace_id, ticket_id=ticket_id, lock=True
        )
        if ticket.deleted_at is not None:
            return
        ticket.deleted_at = touch(ticket)
        await flush(session)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="ticket.deleted",
            subject_type="ticket",
            subject_id=ticket.id,
            after={"deletedAt": ticket.deleted_at},
        )
        emit(
            session,
            Event(
                "ticket.deleted",
                workspace_id,
                {"id": ticket.id},
                channels=channels(ticket.id),
                actor=actor.as_dict(),
            ),
        )


async def restore_ticket(
    session: AsyncSession, *, workspace_id: str, actor: Actor, ticket_id: str
) -> Ticket:
    async with unit(session):
        ticket = await get_ticket(
            session, workspace_id=workspace_id, ticket_id=ticket_id, lock=True
        )
        if ticket.deleted_at is None:
            return ticket
        diff: dict[str, list[Any]] = {"deletedAt": [ticket.deleted_at, None]}
        ticket.deleted_at = None
        touch(ticket)
        await flush(session)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="ticket.restored",
            subject_type="ticket",
            subject_id=ticket.id,
            before={"deletedAt": diff["deletedAt"][0]},
            after={"deletedAt": None},
        )
        summary = (await summaries(session, workspace_id, [ticket.id]))[ticket.id]
        emit_updated(session, ticket, diff, summary, actor)
    return ticket


async def detail(session: AsyncSession, *, workspace_id: str, ticket_id: str) -> Summary:
    """The ticket view (`TicketDetail` in its wire shape)."""
    return await ticket_detail(session, workspace_id=workspace_id, ticket_id=ticket_id)


async def reindex_customer_tickets(
    session: AsyncSession, *, workspace_id: str, user_id: str
) -> None:
    """Refresh the search documents of a customer's tickets (after a name or email change)."""
    async with unit(session):
        ids = (
            (
                await session.execute(
                    select(Ticket.id).where(
                        Ticket.workspace_id == workspace_id, Ticket.user_id == user_id
                    )
                )
            )
            .scalars()
            .all()
        )
        await search.reindex_tickets(session, workspace_id, ids)
