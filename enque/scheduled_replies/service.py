"""Scheduled replies: a public reply written now and sent at `send_at`.

Sending (`send_due_replies`, run by the scheduler every few seconds) goes through
`comments.service.add_reply`, the path of an immediate reply: signatures, `pending` delivery,
`comment.created`, the email domain's sending reaction, automations.

Exactly once, across any number of processes:
- A sender claims due rows with one conditional UPDATE (`status` pending, or a `sending` whose
  lease ran out; `next_attempt_at <= now`) that stamps its own `claim_token`, counts the
  attempt and moves `next_attempt_at` to the end of the lease. Only rows whose token it reads
  back are its own.
- The reply and the `sent` mark are written in one transaction, the mark conditional on the
  token still being this sender's; a sender that lost its lease (took longer than
  `CLAIM_LEASE`) rolls its reply back. A sender that crashed leaves a `sending` row that
  becomes due again when its lease ends.
- A failure puts the row back to `pending` at `now + BACKOFF[attempt]`, or marks it `failed`
  with the reason after `MAX_ATTEMPTS` or at once for errors retrying cannot fix (the ticket
  or an attachment is gone, the content is refused).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import SYSTEM, Actor, record
from enque.comments.service import add_reply
from enque.core.api import PageParams, dump
from enque.core.db import new_id, now, unit
from enque.core.errors import ApiError, conflict, forbidden, not_found, validation_error
from enque.core.events import Event, emit
from enque.core.html import html_to_text, sanitize_html
from enque.core.pagination import Page, SortKey, keyset_page
from enque.core.runtime import Runtime, runtime_of
from enque.scheduled_replies.models import ScheduledReply
from enque.scheduled_replies.schemas import ScheduledReplyOut
from enque.tickets.seams import attachments
from enque.tickets.service import channels, ensure_open_for_change, get_ticket

log = logging.getLogger(__name__)

MAX_AHEAD = 366 * 86400  # a reply may be scheduled up to a year ahead
PAST_GRACE = 60  # a `sendAt` this far in the past still counts as "now"
CLAIM_LEASE = 300  # seconds a claim holds before another sender may take the row over
CLAIM_BATCH = 50
SEND_CONCURRENCY = 4  # replies written at once on PostgreSQL
BACKOFF = (60, 300, 900, 3600)  # wait after the 1st, 2nd, … failed attempt
MAX_ATTEMPTS = len(BACKOFF) + 1
PERMANENT = frozenset({"NOT_FOUND", "VALIDATION_ERROR", "FORBIDDEN", "BAD_REQUEST"})
ACTIVE = ("pending", "sending")

_clock = now  # `send_due_replies` takes a parameter named `now`


def view(row: ScheduledReply) -> ScheduledReplyOut:
    out = ScheduledReplyOut.model_validate(row)
    if row.status not in ACTIVE:
        out.next_attempt_at = None
    return out


def _event(kind: str, row: ScheduledReply, actor: Actor | None = None) -> Event:
    return Event(
        f"scheduled_reply.{kind}",
        row.workspace_id,
        {"ticketId": row.ticket_id, "scheduledReply": dump(view(row))},
        channels=channels(row.ticket_id),
        actor=actor.as_dict() if actor else None,
    )


# ---------------------------------------------------------------- people


async def get_scheduled_reply(
    session: AsyncSession, *, workspace_id: str, scheduled_reply_id: str
) -> ScheduledReply:
    row = (
        await session.execute(
            select(ScheduledReply).where(
                ScheduledReply.workspace_id == workspace_id,
                ScheduledReply.id == scheduled_reply_id,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise not_found("Scheduled reply")
    return row


async def list_scheduled_replies(
    session: AsyncSession,
    *,
    workspace_id: str,
    ticket_id: str,
    page: PageParams,
    status: str | None = None,
) -> Page[ScheduledReply]:
    """The ticket's scheduled replies (every state unless `status`), soonest first."""
    await get_ticket(session, workspace_id=workspace_id, ticket_id=ticket_id)
    stmt = select(ScheduledReply).where(
        ScheduledReply.workspace_id == workspace_id, ScheduledReply.ticket_id == ticket_id
    )
    if status is not None:
        stmt = stmt.where(ScheduledReply.status == status)
    keys = [SortKey(ScheduledReply.send_at), SortKey(ScheduledReply.id)]
    return await keyset_page(session, stmt, keys, page, lambda r: (r.send_at, r.id))


async def schedule_reply(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    ticket_id: str,
    content: str,
    send_at: int,
    to: Sequence[str] = (),
    cc: Sequence[str] | None = None,
    bcc: Sequence[str] = (),
    attachment_ids: Sequence[str] = (),
    ticket_status: str | None = None,
) -> ScheduledReply:
    """Keep a public reply by `actor` (an agent) to send at `send_at`."""
    if actor.type != "agent" or not actor.id:
        raise ValueError("scheduled replies are written by agents")
    async with unit(session):
        ticket = await get_ticket(session, workspace_id=workspace_id, ticket_id=ticket_id)
        ensure_open_for_change(ticket)
        moment = now()
        if send_at < moment - PAST_GRACE:
            raise validation_error("sendAt", "must not be in the past")
        if send_at > moment + MAX_AHEAD:
            raise validation_error("sendAt", "at most a year ahead")
        sanitized = sanitize_html(content)
        if not html_to_text(sanitized) and "<img" not in sanitized:
            raise validation_error("content", "the message is empty")
        files = attachments(session)
        if attachment_ids and files is None:
            raise validation_error("attachmentIds", "attachments are not available")
        if attachment_ids and files is not None:
            await files.check(
                session,
                workspace_id=workspace_id,
                ticket_id=ticket.id,
                attachment_ids=list(dict.fromkeys(attachment_ids)),
            )
        row = ScheduledReply(
            workspace_id=workspace_id,
            ticket_id=ticket.id,
            agent_id=actor.id,
            content=sanitized,
            to=list(to),
            cc=None if cc is None else list(cc),
            bcc=list(bcc),
            attachment_ids=list(dict.fromkeys(attachment_ids)),
            ticket_status=ticket_status,
            send_at=send_at,
            next_attempt_at=send_at,
            status="pending",
        )
        session.add(row)
        await session.flush()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="scheduled_reply.created",
            subject_type="ticket",
            subject_id=ticket.id,
            after={"scheduledReplyId": row.id, "sendAt": send_at},
        )
        emit(session, _event("created", row, actor))
    return row


async def cancel_scheduled_reply(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    scheduled_reply_id: str,
    is_manager: bool = False,
) -> ScheduledReply:
    """Cancel a reply not yet sent; its author or a manager may (409 once it is on its way)."""
    async with unit(session):
        row = await get_scheduled_reply(
            session, workspace_id=workspace_id, scheduled_reply_id=scheduled_reply_id
        )
        if not is_manager and (actor.type != "agent" or row.agent_id != actor.id):
            raise forbidden("Only its author or a manager can cancel a scheduled reply")
        moment = now()
        result = await session.execute(
            update(ScheduledReply)
            .where(ScheduledReply.id == row.id, ScheduledReply.status == "pending")
            .values(status="cancelled", cancelled_at=moment, updated_at=moment)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            await session.refresh(row)
            raise conflict(
                f"The scheduled reply is {row.status} and can no longer be cancelled",
                {"status": row.status},
            )
        await session.refresh(row)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="scheduled_reply.cancelled",
            subject_type="ticket",
            subject_id=row.ticket_id,
            after={"scheduledReplyId": row.id},
        )
        emit(session, _event("cancelled", row, actor))
    return row


async def held_attachment_ids(
    session: AsyncSession, *, workspace_id: str | None = None
) -> set[str]:
    """Uploads that replies waiting to be sent will link: an orphan sweep must keep them.

    `runtime.services["held_attachment_ids"]`; every workspace when `workspace_id` is None.
    """
    stmt = select(ScheduledReply.attachment_ids).where(ScheduledReply.status.in_(ACTIVE))
    if workspace_id is not None:
        stmt = stmt.where(ScheduledReply.workspace_id == workspace_id)
    held: set[str] = set()
    for ids in (await session.execute(stmt)).scalars():
        held.update(ids or ())
    return held


# ---------------------------------------------------------------- sending


class LostClaim(Exception):
    """Another sender took the row over (our lease ran out) or it was cancelled."""


async def _due_ids(session: AsyncSession, moment: int, limit: int) -> list[str]:
    """Rows due at `moment` (pending, or sending with a lapsed lease), soonest first."""
    due = (
        select(ScheduledReply.id)
        .where(ScheduledReply.status.in_(ACTIVE), ScheduledReply.next_attempt_at <= moment)
        .order_by(ScheduledReply.next_attempt_at, ScheduledReply.id)
        .limit(limit)
    )
    if not runtime_of(session).db.is_sqlite:  # concurrent claimers take disjoint rows
        due = due.with_for_update(skip_locked=True)
    return list((await session.execute(due)).scalars())


async def _take(session: AsyncSession, ids: list[str], moment: int, token: str) -> list[str]:
    """The conditional UPDATE: of `ids`, those still due become this sender's (`token`).

    A row another sender claimed since `ids` was read is no longer due (its `next_attempt_at`
    moved to the end of that sender's lease), so it is not taken twice; on PostgreSQL the row
    lock makes the second UPDATE re-check the condition after the first commits.
    """
    claimed = await session.execute(
        update(ScheduledReply)
        .where(
            ScheduledReply.id.in_(ids),
            ScheduledReply.status.in_(ACTIVE),
            ScheduledReply.next_attempt_at <= moment,
        )
        .values(
            status="sending",
            claim_token=token,
            claimed_until=moment + CLAIM_LEASE,
            next_attempt_at=moment + CLAIM_LEASE,
            attempts=ScheduledReply.attempts + 1,
            updated_at=ScheduledReply.updated_at,
        )
        .returning(ScheduledReply.id)
        .execution_options(synchronize_session=False)
    )
    mine = set(claimed.scalars())
    return [row_id for row_id in ids if row_id in mine]  # in the order they fell due


async def _claim(runtime: Runtime, moment: int, limit: int) -> tuple[str, list[str]]:
    """Claim up to `limit` due rows for this sender, in one short transaction."""
    token = new_id()
    async with runtime.db.transaction() as session:
        ids = await _due_ids(session, moment, limit)
        return token, (await _take(session, ids, moment, token) if ids else [])


async def _claimed(session: AsyncSession, row_id: str, token: str) -> ScheduledReply:
    row = (
        await session.execute(
            select(ScheduledReply)
            .where(
                ScheduledReply.id == row_id,
                ScheduledReply.claim_token == token,
                ScheduledReply.status == "sending",
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise LostClaim(row_id)
    return row


async def _send(runtime: Runtime, row_id: str, token: str) -> None:
    """The reply and the `sent` mark in one transaction (rolled back if the claim was lost)."""
    async with runtime.db.transaction() as session:
        row = await _claimed(session, row_id, token)
        actor = Actor("agent", row.agent_id)
        comment = await add_reply(
            session,
            workspace_id=row.workspace_id,
            actor=actor,
            ticket_id=row.ticket_id,
            content=row.content,
            to=row.to or [],
            cc=row.cc,
            bcc=row.bcc or [],
            attachment_ids=row.attachment_ids or [],
            status=row.ticket_status,
        )
        moment = now()
        marked = await session.execute(
            update(ScheduledReply)
            .where(
                ScheduledReply.id == row.id,
                ScheduledReply.claim_token == token,
                ScheduledReply.status == "sending",
            )
            .values(
                status="sent",
                sent_comment_id=comment.id,
                sent_at=moment,
                last_error=None,
                claim_token=None,
                claimed_until=None,
                updated_at=moment,
            )
            .execution_options(synchronize_session=False)
        )
        if marked.rowcount != 1:  # type: ignore[attr-defined]
            raise LostClaim(row.id)
        await session.refresh(row)
        record(
            session,
            workspace_id=row.workspace_id,
            actor=actor,
            verb="scheduled_reply.sent",
            subject_type="ticket",
            subject_id=row.ticket_id,
            after={"scheduledReplyId": row.id, "commentId": comment.id},
        )
        emit(session, _event("sent", row, actor))


def _reason(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        details = exc.details if isinstance(exc.details, list) else []
        extra = "; ".join(
            f"{d.get('path', '')}: {d.get('message', '')}".strip(": ")
            for d in details
            if isinstance(d, dict)
        )
        return f"{exc.message} ({extra})" if extra else exc.message
    return f"internal error ({type(exc).__name__})"


async def _failed(runtime: Runtime, row_id: str, token: str, exc: Exception, moment: int) -> None:
    """Back to `pending` after the backoff, or `failed` with the reason."""
    reason = _reason(exc)
    async with runtime.db.transaction() as session:
        try:
            row = await _claimed(session, row_id, token)
        except LostClaim:
            return
        permanent = isinstance(exc, ApiError) and exc.code in PERMANENT
        final = permanent or row.attempts >= MAX_ATTEMPTS
        row.last_error = reason
        row.claim_token = None
        row.claimed_until = None
        row.updated_at = max(now(), row.updated_at)
        if final:
            row.status = "failed"
        else:
            row.status = "pending"
            row.next_attempt_at = moment + BACKOFF[min(row.attempts, len(BACKOFF)) - 1]
        await session.flush()
        record(
            session,
            workspace_id=row.workspace_id,
            actor=SYSTEM,
            verb="scheduled_reply.failed" if final else "scheduled_reply.retry",
            subject_type="ticket",
            subject_id=row.ticket_id,
            after={
                "scheduledReplyId": row.id,
                "attempts": row.attempts,
                "error": reason,
                "nextAttemptAt": None if final else row.next_attempt_at,
            },
        )
        if final:
            emit(session, _event("failed", row))


async def _deliver(runtime: Runtime, row_id: str, token: str, moment: int) -> bool:
    """Send one claimed reply; on failure schedule the retry or mark it failed."""
    try:
        await _send(runtime, row_id, token)
        return True
    except LostClaim:
        log.info("scheduled reply %s: claim lost to another sender", row_id)
    except Exception as exc:
        log.warning(
            "scheduled reply %s failed: %s",
            row_id,
            _reason(exc),
            exc_info=not isinstance(exc, ApiError),
        )
        await _failed(runtime, row_id, token, exc, moment)
    return False


async def send_due_replies(
    runtime: Runtime,
    now: int | None = None,
    *,
    limit: int | None = None,
    concurrency: int | None = None,
) -> int:
    """Send every scheduled reply due at `now` (default: the clock); returns how many went.

    Safe to run in any number of processes at once (each row is claimed by one of them).
    `limit` bounds the rows handled in this call (default: until none is due). Up to
    `concurrency` replies are written at once (default: 1 on SQLite, whose writes are serial
    anyway, else `SEND_CONCURRENCY`).
    """
    if concurrency is None:
        concurrency = 1 if runtime.db.is_sqlite else SEND_CONCURRENCY
    gate = asyncio.Semaphore(max(1, concurrency))

    async def deliver(row_id: str, token: str, moment: int) -> bool:
        async with gate:
            return await _deliver(runtime, row_id, token, moment)

    handled = sent = 0
    while limit is None or handled < limit:
        moment = now if now is not None else _clock()
        batch = CLAIM_BATCH if limit is None else min(CLAIM_BATCH, limit - handled)
        token, ids = await _claim(runtime, moment, batch)
        if not ids:
            break
        handled += len(ids)
        results = await asyncio.gather(*(deliver(row_id, token, moment) for row_id in ids))
        sent += sum(results)
    return sent
