"""Public replies go out by email through the ticket's mailbox (SMTP or Microsoft Graph).

The comments domain stores a reply with `delivery="pending"` and emits `comment.created`;
`Outbox.react` picks it up after commit and sends it in the background. Before sending, the
outgoing message is written to the ledger (direction `out`, its Message-ID), so the copy that
comes back through sync (Sent folder, a CC to the mailbox) is recognised and not ingested.
Temporary failures are retried with backoff, each attempt reported with
`comments.service.record_delivery` (event `comment.delivery`); after `MAX_ATTEMPTS`, or on a
permanent failure, the comment shows `failed` with the reason. Automatic replies (written by
automations) carry `Auto-Submitted: auto-replied` and obey the limits of `automatic.py`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from enque.attachments.models import Attachment
from enque.comments.models import Comment
from enque.comments.service import record_delivery
from enque.core.db import now
from enque.core.events import Event
from enque.core.mail import Mail
from enque.core.runtime import Runtime
from enque.core.storage import storage_of
from enque.email import smtp
from enque.email.errors import ChannelError, PermanentError, backoff_delay
from enque.email.outbound_mime import Outgoing, OutgoingAttachment, build_message
from enque.email.threading import make_message_id, references_chain, reply_subject
from enque.mailboxes import automatic
from enque.mailboxes.models import EmailMessage, Mailbox
from enque.mailboxes.service import smtp_settings, tls_context
from enque.tickets.models import Ticket

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
CLAIM_TTL = 600
STALE_PENDING = 300  # a reply still pending after this long is sent again by the resend job
# What a mail server takes: SMTP servers commonly refuse messages over 25 MB; Graph's `sendMail`
# takes a request of 4 MB, which base64 MIME makes about 3 MB of files.
MAX_FILES_BYTES = {"imap": 25 * 1024 * 1024, "microsoft": 3 * 1024 * 1024}


@dataclass
class Prepared:
    comment: Comment
    ticket: Ticket
    mailbox: Mailbox
    message_id: str
    in_reply_to: str | None
    references: list[str]


class Outbox:
    """Sends pending replies in background tasks; `drain()` waits for them (tests, shutdown)."""

    def __init__(self, runtime: Runtime, *, base_delay: float = 2.0) -> None:
        self.runtime = runtime
        self.base_delay = base_delay
        self.tasks: set[asyncio.Task[None]] = set()

    async def react(self, event: Event) -> None:
        if event.type != "comment.created":
            return
        comment = event.payload.get("comment") or {}
        if comment.get("kind") != "reply" or comment.get("delivery") != "pending":
            return
        # Decided now (before the request answers): is there a mailbox to send from at all?
        async with self.runtime.db.session(write=False) as session:
            ticket_mailbox = await session.scalar(
                select(Ticket.mailbox_id).where(
                    Ticket.workspace_id == event.workspace_id,
                    Ticket.id == event.payload.get("ticketId"),
                )
            )
            mailbox = await sending_mailbox(session, event.workspace_id, ticket_mailbox)
        if mailbox is not None:
            self.submit(event.workspace_id, str(comment["id"]))

    def submit(self, workspace_id: str, comment_id: str) -> None:
        task = asyncio.create_task(self._send_claimed(workspace_id, comment_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout: float | None = None) -> None:
        while self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)
            if timeout is not None:
                return

    async def _send_claimed(self, workspace_id: str, comment_id: str) -> None:
        key, owner = f"email-send:{comment_id}", uuid.uuid4().hex
        if not await self.runtime.cache.set_nx(key, owner, CLAIM_TTL):
            return  # another worker is sending it
        try:
            await deliver_reply(
                self.runtime, workspace_id=workspace_id, comment_id=comment_id,
                base_delay=self.base_delay,
            )  # fmt: skip
        except Exception:
            log.exception("sending reply %s failed", comment_id)
        finally:
            if await self.runtime.cache.get(key) == owner:
                await self.runtime.cache.delete(key)

    async def resend_pending(self) -> int:
        """Replies left pending (a worker stopped mid-send): sent again. The periodic job."""
        async with self.runtime.db.session(write=False) as session:
            rows = await session.execute(
                select(Comment.workspace_id, Comment.id).where(
                    Comment.kind == "reply",
                    Comment.delivery == "pending",
                    Comment.updated_at < now() - STALE_PENDING,
                )
            )
            found = list(rows)
        for workspace_id, comment_id in found:
            self.submit(workspace_id, comment_id)
        return len(found)


async def sending_mailbox(
    session: AsyncSession, workspace_id: str, mailbox_id: str | None
) -> Mailbox | None:
    """The ticket's mailbox; for a ticket without one, the workspace's oldest live mailbox."""
    stmt = select(Mailbox).where(Mailbox.workspace_id == workspace_id, Mailbox.deleted_at.is_(None))
    if mailbox_id:
        found = (await session.execute(stmt.where(Mailbox.id == mailbox_id))).scalar_one_or_none()
        if found is not None:
            return found
    stmt = stmt.where(Mailbox.is_active.is_(True)).order_by(Mailbox.created_at, Mailbox.id)
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


async def _prepare(runtime: Runtime, workspace_id: str, comment_id: str) -> Prepared | str | None:
    """The reply, its ticket and mailbox, and its ledger row (written before sending).

    None when there is nothing to send (already sent, or no mailbox in the workspace yet); a
    string when it cannot be sent (the reason)."""
    async with runtime.db.transaction() as session:
        comment = (
            await session.execute(
                select(Comment).where(
                    Comment.workspace_id == workspace_id, Comment.id == comment_id
                )
            )
        ).scalar_one_or_none()
        if comment is None or comment.kind != "reply" or comment.delivery != "pending":
            return None
        ticket = await session.get_one(Ticket, comment.ticket_id)
        mailbox = await sending_mailbox(session, workspace_id, ticket.mailbox_id)
        if mailbox is None:
            return None  # no mailbox in the workspace: the reply waits (resend job)
        if mailbox.state == "needs_reconnect":
            return "the mailbox needs to be reconnected"
        sent = (
            await session.execute(
                select(EmailMessage).where(
                    EmailMessage.workspace_id == workspace_id,
                    EmailMessage.comment_id == comment.id,
                    EmailMessage.direction == "out",
                )
            )
        ).scalar_one_or_none()
        if sent is not None:  # an earlier attempt: same Message-ID, same threading
            return Prepared(
                comment, ticket, mailbox, sent.internet_message_id or "",
                sent.in_reply_to, list(sent.references or []),
            )  # fmt: skip
        if automatic.is_automatic(comment):
            reason = await automatic.refusal(session, comment, ticket)
            if reason is not None:
                return f"not sent: {reason}"
        parent = (
            await session.execute(
                select(EmailMessage)
                .where(
                    EmailMessage.workspace_id == workspace_id,
                    EmailMessage.ticket_id == ticket.id,
                    EmailMessage.internet_message_id.is_not(None),
                    EmailMessage.state.in_(("processed", "sent", "pending")),
                )
                .order_by(EmailMessage.created_at.desc(), EmailMessage.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        in_reply_to = parent.internet_message_id if parent else ticket.root_message_id
        references = (
            references_chain(parent.references or [], parent.internet_message_id)
            if parent
            else references_chain([], ticket.root_message_id)
        )
        message_id = make_message_id(mailbox.email)
        session.add(
            EmailMessage(
                workspace_id=workspace_id,
                mailbox_id=mailbox.id,
                direction="out",
                provider_id=None,
                internet_message_id=message_id,
                in_reply_to=in_reply_to,
                references=references,
                ticket_id=ticket.id,
                comment_id=comment.id,
                state="pending",
            )
        )
    return Prepared(comment, ticket, mailbox, message_id, in_reply_to, references)


async def _send(runtime: Runtime, prepared: Prepared) -> str | None:
    """One attempt; returns a note about refused recipients (the rest got it)."""
    comment, mailbox = prepared.comment, prepared.mailbox
    outgoing = build_message(
        from_address=mailbox.email,
        from_name=mailbox.display_name,
        to=comment.to or [],
        cc=comment.cc or [],
        bcc=comment.bcc or [],
        subject=reply_subject(prepared.ticket.subject, prepared.ticket.number),
        html=comment.content,
        text=comment.text,
        in_reply_to=prepared.in_reply_to,
        references=prepared.references,
        message_id=prepared.message_id,
        automatic=automatic.is_automatic(comment),
        attachments=await _files_of(runtime, comment, mailbox),
    )
    if not outgoing.recipients:
        raise PermanentError("the reply has no recipients")
    return await _transmit(runtime, mailbox, outgoing)


async def _files_of(
    runtime: Runtime, comment: Comment, mailbox: Mailbox
) -> list[OutgoingAttachment]:
    """The reply's files, read from storage; too large for the mailbox's server: refused."""
    async with runtime.db.session(write=False) as session:
        rows = (
            await session.execute(
                select(Attachment)
                .where(
                    Attachment.workspace_id == comment.workspace_id,
                    Attachment.comment_id == comment.id,
                )
                .order_by(Attachment.created_at, Attachment.id)
            )
        ).scalars()
        files = list(rows)
    limit = MAX_FILES_BYTES.get(mailbox.kind, MAX_FILES_BYTES["imap"])
    if sum(f.size for f in files) > limit:
        raise PermanentError(
            f"the files attached come to more than the {limit // (1024 * 1024)} MB "
            "this mailbox's server accepts in one message"
        )
    storage = storage_of(runtime)
    return [
        OutgoingAttachment(
            filename=f.file_name,
            content_type=f.content_type,
            data=await storage.read(f.storage_key),
            content_id=f.content_id,
            inline=f.is_inline and bool(f.content_id),
        )
        for f in files
    ]


async def _transmit(runtime: Runtime, mailbox: Mailbox, outgoing: Outgoing) -> str | None:
    """Hand a message to the mailbox's server (SMTP or Graph); a note about refused recipients."""
    import httpx  # on first use: importing it slows every start

    raw = outgoing.as_bytes()
    if mailbox.kind == "imap":
        result = await smtp.send(
            smtp_settings(runtime, mailbox),
            sender=mailbox.email,
            recipients=outgoing.recipients,
            message=raw,
            ssl_context=tls_context(runtime),
        )
        if result.refused:
            return "refused: " + "; ".join(f"{a} ({r})" for a, r in result.refused.items())
        return None
    from enque.mailboxes.sync import graph_client

    async with httpx.AsyncClient() as http:
        graph = await graph_client(runtime, mailbox, http)
        await graph.send_mime(raw)
    return None


async def _mark_ledger(runtime: Runtime, message_id: str, state: str, error: str | None) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(
            update(EmailMessage)
            .where(EmailMessage.internet_message_id == message_id, EmailMessage.direction == "out")
            .values(state=state, error=error)
        )


async def deliver_reply(
    runtime: Runtime, *, workspace_id: str, comment_id: str, base_delay: float = 2.0
) -> str | None:
    """Send one pending reply with retries; returns its final delivery state."""
    prepared = await _prepare(runtime, workspace_id, comment_id)
    if prepared is None:
        return None
    if isinstance(prepared, str):
        async with runtime.db.session() as session:
            await record_delivery(
                session, workspace_id=workspace_id, comment_id=comment_id,
                delivery="failed", error=prepared,
            )  # fmt: skip
        return "failed"
    attempt = prepared.comment.delivery_attempts
    while True:
        attempt += 1
        try:
            note = await _send(runtime, prepared)
        except ChannelError as exc:
            final = not exc.temporary or attempt >= MAX_ATTEMPTS
            state = "failed" if final else "pending"
            async with runtime.db.session() as session:
                await record_delivery(
                    session, workspace_id=workspace_id, comment_id=comment_id,
                    delivery=state, error=exc.message[:2000],
                )  # fmt: skip
            if final:
                await _mark_ledger(runtime, prepared.message_id, "failed", exc.message[:2000])
                return "failed"
            await asyncio.sleep(
                backoff_delay(attempt, base=base_delay, retry_after=exc.retry_after)
            )
            continue
        await _mark_ledger(runtime, prepared.message_id, "sent", note)
        async with runtime.db.session() as session:
            await record_delivery(
                session, workspace_id=workspace_id, comment_id=comment_id,
                delivery="sent", error=note, message_id=prepared.message_id,
            )  # fmt: skip
        return "sent"


async def send_notice(runtime: Runtime, workspace_id: str, mail: Mail) -> bool:
    """System mail to an agent (a notification digest) from the workspace's mailbox, for
    deployments without `SMTP_URL`. False, logged, when there is no usable mailbox or the send
    failed: the caller keeps the mail to try again."""
    async with runtime.db.session(write=False) as session:
        mailbox = await sending_mailbox(session, workspace_id, None)
    if mailbox is None or mailbox.state == "needs_reconnect":
        log.warning("no mailbox to send %r to %s from", mail.subject, mail.to)
        return False
    outgoing = build_message(
        from_address=mailbox.email,
        from_name=mailbox.display_name,
        to=[mail.to],
        subject=mail.subject,
        html=mail.html or "",
        text=mail.text,
    )
    outgoing.message["Auto-Submitted"] = "auto-generated"  # no auto-replies back to us
    outgoing.message["X-Auto-Response-Suppress"] = "All"
    try:
        refused = await _transmit(runtime, mailbox, outgoing)
    except (ChannelError, OSError) as exc:
        log.warning("notice %r to %s not sent: %s", mail.subject, mail.to, exc)
        return False
    except Exception:
        log.exception("notice %r to %s not sent", mail.subject, mail.to)
        return False
    if refused:
        log.warning("notice %r to %s not sent: %s", mail.subject, mail.to, refused)
        return False
    return True
