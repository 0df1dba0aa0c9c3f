"""Merging tickets: the sources' threads move under the target, the sources point to it."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.comments.models import Comment
from enque.core.db import new_id, now, unit
from enque.core.errors import ApiError, conflict
from enque.core.events import Event, emit
from enque.tickets import seams, search
from enque.tickets.models import Ticket, TicketBody
from enque.tickets.queries import summaries
from enque.tickets.service import (
    channels,
    emit_updated,
    ensure_open_for_change,
    flush,
    lock_tickets,
    touch,
)


async def move_thread(
    session: AsyncSession, *, workspace_id: str, sources: Sequence[Ticket], target: Ticket
) -> None:
    """Everything that belongs to the sources' threads moves under the target: their comments,
    each source's first message (as a customer message at its original time), and whatever the
    attachments domain keeps per ticket. The one place a merge moves content."""
    source_ids = [s.id for s in sources]
    await session.execute(
        update(Comment)
        .where(Comment.workspace_id == workspace_id, Comment.ticket_id.in_(source_ids))
        .values(ticket_id=target.id)
        .execution_options(synchronize_session=False)
    )
    bodies = {
        b.ticket_id: b
        for b in (
            await session.execute(select(TicketBody).where(TicketBody.ticket_id.in_(source_ids)))
        ).scalars()
    }
    store = seams.attachments(session)
    files = (
        await store.for_bodies(session, workspace_id=workspace_id, ticket_ids=source_ids)
        if store is not None
        else {}
    )
    body_comments: dict[str, str] = {}
    for source in sources:
        body = bodies.get(source.id)
        if body is not None and (body.plain_text or body.sanitized_html or files.get(source.id)):
            first = Comment(
                id=new_id(),
                workspace_id=workspace_id,
                ticket_id=target.id,
                kind="customer",
                author_type="user",
                author_id=source.user_id,
                content=body.sanitized_html,
                text=body.plain_text,
                original_html=body.original_html,
                created_at=source.created_at,
                updated_at=source.created_at,
            )
            session.add(first)
            body_comments[source.id] = first.id
        line = f"Ticket #{source.number} ({source.subject}) was merged into this ticket."
        session.add(
            Comment(
                workspace_id=workspace_id,
                ticket_id=target.id,
                kind="system",
                author_type="system",
                content=f"<p>{escape(line)}</p>",
                text=line,
            )
        )
    if store is not None:
        await session.flush()  # the comments exist before files point to them
        await store.move(
            session,
            workspace_id=workspace_id,
            source_ticket_ids=source_ids,
            target_ticket_id=target.id,
            body_comments=body_comments,
        )


async def merge_tickets(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    target_id: str,
    source_ids: Sequence[str],
) -> Ticket:
    """Merge the sources into the target. Sources already merged into it are skipped, so the
    call is idempotent; merging into itself, into a merged ticket, a ticket merged elsewhere or a
    deleted one is a conflict (409). Tickets merged into a source follow it to the target."""
    ids = list(dict.fromkeys(source_ids))
    if target_id in ids:
        raise conflict("A ticket cannot be merged into itself")
    async with unit(session):
        tickets = await lock_tickets(session, workspace_id, [target_id, *ids])
        target = tickets.get(target_id)
        missing = [i for i in ids if i not in tickets]
        if target is None or missing:
            raise ApiError("NOT_FOUND", "Ticket not found", [{"id": i} for i in missing] or None)
        ensure_open_for_change(target)
        sources: list[Ticket] = []
        for ticket_id in ids:
            source = tickets[ticket_id]
            if source.merged_into_ticket_id == target.id:
                continue
            if source.merged_into_ticket_id is not None:
                raise conflict(f"Ticket #{source.number} was merged into another ticket")
            if source.deleted_at is not None:
                raise conflict(f"Ticket #{source.number} is deleted")
            sources.append(source)
        if not sources:
            return target
        await move_thread(session, workspace_id=workspace_id, sources=sources, target=target)
        moment = now()
        merged_ids = [s.id for s in sources]
        await session.execute(
            update(Ticket)
            .where(
                Ticket.workspace_id == workspace_id, Ticket.merged_into_ticket_id.in_(merged_ids)
            )
            .values(merged_into_ticket_id=target.id, updated_at=moment, version=Ticket.version + 1)
            .execution_options(synchronize_session=False)
        )
        diffs: dict[str, dict[str, list[Any]]] = {}
        for source in sources:
            diffs[source.id] = {
                "status": [source.status, "Closed"],
                "mergedIntoTicketId": [None, target.id],
                "mergedAt": [None, moment],
            }
            if source.status != "Closed":
                source.closed_at = moment
            source.status = "Closed"
            source.merged_into_ticket_id = target.id
            source.merged_at = moment
            touch(source)
        before = target.updated_at
        touch(target)
        await flush(session)
        await search.reindex_tickets(session, workspace_id, [target.id, *merged_ids])
        for source in sources:
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="ticket.merged",
                subject_type="ticket",
                subject_id=source.id,
                before={"status": diffs[source.id]["status"][0]},
                after={"status": "Closed", "mergedIntoTicketId": target.id},
            )
            emit(
                session,
                Event(
                    "ticket.merged",
                    workspace_id,
                    {"id": source.id, "intoId": target.id},
                    channels=channels(source.id),
                    actor=actor.as_dict(),
                ),
            )
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="ticket.merge_received",
            subject_type="ticket",
            subject_id=target.id,
            after={"sourceTicketIds": merged_ids},
        )
        summary = (await summaries(session, workspace_id, [target.id]))[target.id]
        emit_updated(session, target, {"updatedAt": [before, target.updated_at]}, summary, actor)
    return target
