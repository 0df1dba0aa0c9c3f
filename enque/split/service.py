"""Split: move comments of a ticket into a new ticket (the inverse of a merge).

The new ticket has the source's customer, priority, team, assignee, category and mailbox, the
subject of the source, and `linkedTicketId` pointing to it. The chosen comments (customer
messages, replies, notes; never system lines) move with their times; each thread gets a system
line naming the other ticket, and the activity log of both records the split.
"""

from __future__ import annotations

from html import escape
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.comments.models import Comment
from enque.core.db import unit
from enque.core.errors import ApiError
from enque.core.events import Event, emit
from enque.tickets import search
from enque.tickets.queries import summaries
from enque.tickets.service import (
    NewTicket,
    channels,
    create_ticket,
    emit_updated,
    ensure_open_for_change,
    flush,
    lock_tickets,
    touch,
)

MOVABLE_KINDS = ("customer", "reply", "note")


def _system_line(workspace_id: str, ticket_id: str, line: str) -> Comment:
    return Comment(
        workspace_id=workspace_id,
        ticket_id=ticket_id,
        kind="system",
        author_type="system",
        content=f"<p>{escape(line)}</p>",
        text=line,
    )


async def split_ticket(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    ticket_id: str,
    comment_ids: list[str],
) -> Any:
    wanted = list(dict.fromkeys(comment_ids))
    async with unit(session):
        source = (await lock_tickets(session, workspace_id, [ticket_id])).get(ticket_id)
        if source is None:
            raise ApiError("NOT_FOUND", "Ticket not found")
        ensure_open_for_change(source)
        found = {
            c.id: c
            for c in (
                await session.execute(
                    select(Comment).where(
                        Comment.workspace_id == workspace_id,
                        Comment.ticket_id == source.id,
                        Comment.id.in_(wanted),
                        Comment.deleted_at.is_(None),
                    )
                )
            ).scalars()
        }
        bad = [
            {"path": f"commentIds.{i}", "message": "no such movable comment on this ticket"}
            for i, cid in enumerate(wanted)
            if cid not in found or found[cid].kind not in MOVABLE_KINDS
        ]
        if bad:
            raise ApiError("VALIDATION_ERROR", "Unknown comment", bad)
        target = await create_ticket(
            session,
            workspace_id=workspace_id,
            ticket=NewTicket(
                actor=actor,
                subject=source.subject,
                user_id=source.user_id,
                priority=source.priority,
                assignee_id=source.assignee_id,
                team_id=source.team_id,
                category_id=source.category_id,
                mailbox_id=source.mailbox_id,
                linked_ticket_id=source.id,
            ),
        )
        await session.execute(
            update(Comment)
            .where(Comment.workspace_id == workspace_id, Comment.id.in_(wanted))
            .values(ticket_id=target.id)
            .execution_options(synchronize_session=False)
        )
        session.add(
            _system_line(
                workspace_id,
                source.id,
                f"{len(wanted)} comment(s) were split into ticket #{target.number}.",
            )
        )
        session.add(_system_line(workspace_id, target.id, f"Split from ticket #{source.number}."))
        before = source.updated_at
        touch(source)
        touch(target)
        await flush(session)
        await search.reindex_tickets(session, workspace_id, [source.id, target.id])
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="ticket.split",
            subject_type="ticket",
            subject_id=source.id,
            after={"newTicketId": target.id, "commentIds": wanted},
        )
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="ticket.split_from",
            subject_type="ticket",
            subject_id=target.id,
            after={"sourceTicketId": source.id, "commentIds": wanted},
        )
        emit(
            session,
            Event(
                "ticket.split",
                workspace_id,
                {"id": source.id, "newId": target.id, "commentIds": wanted},
                channels=channels(source.id),
                actor=actor.as_dict(),
            ),
        )
        summary = (await summaries(session, workspace_id, [source.id]))[source.id]
        emit_updated(session, source, {"updatedAt": [before, source.updated_at]}, summary, actor)
    return target
