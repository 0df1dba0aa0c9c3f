"""The new messages of one fetch batch → tickets and comments, set-based, exactly once.

`ingest_batch()` does for a batch what `ingest()` does for one message, with a constant
number of statements for the batch where it can: classification, bodies and the files of
every message (stored together) before the transaction; then in one transaction the
threading lookups of every message (two queries, plus two for Graph conversations and one
for subject tokens when there are some), the lock of every existing ticket they reach (before
the ticket counter, the order of every other writer), the customers (one read, one insert),
the tickets (`tickets.create_tickets`: numbers as one range, one insert per table), the
comments (`comments.add_customer_messages`), the files' links (one update), the ledger rows
and the `email.received` audit rows (one insert each), and at the end one rebuild of the
search documents of every ticket the batch touched (`search.deferred`). The ticket and comment
services publish the same audit rows and events, one per message, and run the same
reactions after commit as for a message ingested alone.

Messages of the batch thread onto each other in order, as if ingested one by one: a
message whose In-Reply-To names one that opens a ticket earlier in the batch goes on that
ticket (its id is given before it is written). One whose reference is an earlier message
that became a comment waits for that comment to be written: the batch is cut there into
rounds, each written with the same constant number of statements.

Exactly once: the ledger's unique constraints decide at the commit, as for one message. If
the transaction fails for any reason (another sync ingested one of the messages, a message
whose processing raises), nothing of it stays and every message of the batch goes through
`ingest()` alone, so that each claim and each failure (dead letter) stays its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import SYSTEM, Actor, record
from enque.attachments.service import AttachmentLinks, discard_unlinked
from enque.comments.service import IncomingMessage, add_customer_messages
from enque.core.db import new_id, unit
from enque.core.runtime import Runtime
from enque.customers.service import find_or_create_customers
from enque.email.classify import Classification, classify
from enque.email.sanitize import rewrite_cids
from enque.email.threading import ticket_number
from enque.mailboxes.ingest import (
    MAX_SUBJECT,
    Context,
    EmailMessage,
    Inbound,
    IngestResult,
    Mailbox,
    _body_html,
    _cc_of,
    _checked_defaults,
    _Files,
    _is_participant,
    _placeholders,
    folded_html,
    identity_of,
    ingest,
    ledger_values,
    store_files_of,
)
from enque.tickets import search
from enque.tickets import service as tickets
from enque.tickets.models import Ticket
from enque.tickets.seams import FileLink

log = logging.getLogger(__name__)


@dataclass
class _Message:
    """One new message of the batch, read and classified."""

    index: int
    inbound: Inbound
    raw: bytes | None
    identity: str
    kind: Classification
    files: _Files = field(default_factory=_Files)
    result: IngestResult | None = None
    thread_how: str | None = None

    @property
    def references(self) -> list[str]:
        parsed = self.inbound.parsed
        ids = [i for i in [parsed.in_reply_to, *reversed(parsed.references)] if i]
        return list(dict.fromkeys(i.strip().strip("<>") for i in ids))


@dataclass
class _Known:
    """What the database says about the batch's threading keys, read once."""

    ledger: dict[str, str]  # Message-ID → ticket (ledger rows that have one)
    roots: dict[str, str]  # root Message-ID → ticket
    conversations: dict[str, str]  # conversation id → ticket (ledger first, then tickets)
    numbers: dict[int, Ticket]  # subject token → ticket


PENDING = ""  # the ticket of a message whose comment is not written yet


@dataclass
class _Round:
    """Messages decided and not yet written: new tickets and comments."""

    opened: list[tuple[_Message, str, Ticket | None]] = field(default_factory=list)
    replies: list[tuple[_Message, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.opened or self.replies)


async def _known(session: AsyncSession, mailbox: Mailbox, batch: Sequence[_Message]) -> _Known:
    ws = mailbox.workspace_id
    refs = list({ref for m in batch for ref in m.references})
    known = _Known({}, {}, {}, {})
    if refs:
        rows = await session.execute(
            select(EmailMessage.internet_message_id, EmailMessage.ticket_id).where(
                EmailMessage.workspace_id == ws,
                EmailMessage.internet_message_id.in_(refs),
                EmailMessage.ticket_id.is_not(None),
            )
        )
        known.ledger = {str(mid): str(tid) for mid, tid in rows.tuples()}
        rows = await session.execute(
            select(Ticket.root_message_id, Ticket.id).where(
                Ticket.workspace_id == ws, Ticket.root_message_id.in_(refs)
            )
        )
        known.roots = {str(mid): str(tid) for mid, tid in rows.tuples()}
    conversations = list({m.inbound.conversation_id for m in batch if m.inbound.conversation_id})
    if conversations:
        rows = await session.execute(  # oldest first: the newest of each stays
            select(Ticket.conversation_id, Ticket.id)
            .where(
                Ticket.workspace_id == ws,
                Ticket.mailbox_id == mailbox.id,
                Ticket.conversation_id.in_(conversations),
            )
            .order_by(Ticket.created_at, Ticket.id)
        )
        known.conversations = {str(cid): str(tid) for cid, tid in rows.tuples()}
        rows = await session.execute(  # the ledger's answer comes before the tickets'
            select(EmailMessage.conversation_id, EmailMessage.ticket_id)
            .where(
                EmailMessage.mailbox_id == mailbox.id,
                EmailMessage.conversation_id.in_(conversations),
                EmailMessage.ticket_id.is_not(None),
            )
            .order_by(EmailMessage.created_at, EmailMessage.id)
        )
        known.conversations.update({str(cid): str(tid) for cid, tid in rows.tuples()})
    return known


async def _numbers(
    session: AsyncSession, workspace_id: str, batch: Sequence[_Message], template: str
) -> dict[int, Ticket]:
    numbers = {ticket_number(m.inbound.parsed.subject, template) for m in batch} - {None}
    if not numbers:
        return {}
    rows = await session.execute(
        select(Ticket).where(Ticket.workspace_id == workspace_id, Ticket.number.in_(numbers))
    )
    return {t.number: t for t in rows.scalars()}


class _Batch:
    """The state of one batch's transaction: what the earlier messages became."""

    def __init__(
        self,
        session: AsyncSession,
        runtime: Runtime,
        mailbox: Mailbox,
        context: Context,
        known: _Known,
    ) -> None:
        self.session = session
        self.runtime = runtime
        self.mailbox = mailbox
        self.context = context
        self.known = known
        self.threads: dict[str, str] = {}  # Message-ID of the batch → its ticket (or PENDING)
        self.conversations: dict[str, str] = {}  # conversation id → newest ticket of the batch
        self.defaults: dict[str, Any] | None = None
        self.rows: list[tuple[int, dict[str, Any]]] = []  # ledger rows' columns, by message

    def _thread(self, message: _Message) -> tuple[str | None, str | None] | None:
        """(ticket id, how) from references and conversation; None while it waits for a
        comment of the current round."""
        refs = message.references
        for ref in refs:
            found = self.threads.get(ref, self.known.ledger.get(ref))
            if found == PENDING:
                return None
            if found:
                return found, "references"
        root = next((self.known.roots[r] for r in refs if r in self.known.roots), None)
        if root:
            return root, "references"
        conversation = message.inbound.conversation_id
        if conversation:
            found = self.conversations.get(conversation, self.known.conversations.get(conversation))
            if found == PENDING:
                return None
            if found:
                return found, "conversation"
        return None, None

    async def run(self, batch: Sequence[_Message]) -> None:
        numbers = await _numbers(
            self.session, self.mailbox.workspace_id, batch, self.context.token_template
        )
        # Every existing ticket the batch may write to, locked before the ticket counter (a
        # new ticket takes it): the order of every other writer (a reply past the reopen
        # window, a split), so no two transactions wait on each other.
        known = self.known
        reachable = {*known.ledger.values(), *known.roots.values(), *known.conversations.values()}
        reachable |= {ticket.id for ticket in numbers.values()}
        if reachable:
            await tickets.lock_tickets(self.session, self.mailbox.workspace_id, reachable)
        current = _Round()
        for message in batch:
            if message.kind.kind in ("loop", "bounce"):
                self._ignored(message, message.kind.kind)
                continue
            thread = self._thread(message)
            if thread is None:  # it threads onto a comment of this round: write the round
                await self._write(current)
                current = _Round()
                thread = self._thread(message)
                assert thread is not None
            ticket_id, how = thread
            token: Ticket | None = None
            if ticket_id is None:
                number = ticket_number(message.inbound.parsed.subject, self.context.token_template)
                token = numbers.get(number) if number is not None else None
                ticket_id, how = (token.id, "token") if token is not None else (None, None)
            message.thread_how = how
            if message.kind.kind == "auto_reply" and ticket_id is None:
                self._ignored(message, "auto_reply")
                continue
            sender = message.inbound.parsed.sender
            assert sender is not None
            if token is not None and not await _is_participant(self.session, token, sender.email):
                current.opened.append((message, new_id(), token))  # someone else's thread
            elif ticket_id is not None:
                current.replies.append((message, ticket_id))
            else:
                current.opened.append((message, new_id(), None))
            self._claim(message, current)
        await self._write(current)
        if self.rows:  # one insert, no ORM objects: nothing reads them back
            rows = [row for _, row in sorted(self.rows, key=lambda r: r[0])]
            statement = insert(EmailMessage).execution_options(render_nulls=True)
            await self.session.execute(statement, rows)  # every row the same columns

    def _claim(self, message: _Message, current: _Round) -> None:
        """Where the batch's later messages find this one before it is written."""
        if current.opened and current.opened[-1][0] is message:
            ticket_id = current.opened[-1][1]
        else:
            ticket_id = PENDING
        self.threads[message.identity] = ticket_id
        if message.inbound.conversation_id:
            self.conversations[message.inbound.conversation_id] = ticket_id

    def _ignored(self, message: _Message, reason: str) -> None:
        row = ledger_values(self.mailbox, message.inbound, message.identity, message.kind)
        row.update(state="ignored", error="; ".join(message.kind.reasons)[:2000])
        row.update(ticket_id=None, comment_id=None)
        self.rows.append((message.index, row))
        message.result = IngestResult("ignored", reason=reason)

    async def _write(self, current: _Round) -> None:
        if not current:
            return
        session, ws = self.session, self.mailbox.workspace_id
        everyone = [m for m, _, _ in current.opened] + [m for m, _ in current.replies]
        senders = [m.inbound.parsed.sender for m in sorted(everyone, key=lambda m: m.index)]
        users = await find_or_create_customers(
            session, ws, [(s.email, s.name or None) for s in senders if s is not None]
        )

        def user_of(message: _Message) -> str:
            sender = message.inbound.parsed.sender
            assert sender is not None
            return users[sender.email.strip().lower()].id

        if current.opened and self.defaults is None:
            self.defaults = await _checked_defaults(session, self.mailbox)
        opened = [
            tickets.NewTicket(
                id=ticket_id,
                actor=Actor("user", user_of(m)),
                subject=_subject(m),
                body=rewrite_cids(_body_html(m.inbound.parsed), m.files.urls())
                + _placeholders(m.files),
                user_id=user_of(m),
                mailbox_id=self.mailbox.id,
                cc=self._cc(m),
                conversation_id=m.inbound.conversation_id,
                root_message_id=m.identity,
                linked_ticket_id=token.id if token is not None else None,
                **(self.defaults or {}),
            )
            for m, ticket_id, token in current.opened
        ]
        await tickets.create_tickets(session, workspace_id=ws, items=opened)
        links = [FileLink(ticket_id, None, m.files.ids) for m, ticket_id, _ in current.opened]
        await AttachmentLinks().link_many(session, workspace_id=ws, links=links)
        for message, ticket_id, _ in current.opened:
            self._done(message, IngestResult("created", ticket_id))
        replies = [
            IncomingMessage(
                ticket_id=ticket_id,
                user_id=user_of(m),
                content=rewrite_cids(folded_html(m.inbound.parsed), m.files.urls())
                + _placeholders(m.files),
                subject=_subject(m),
                to=[a.email for a in m.inbound.parsed.to],
                cc=self._cc(m),
                message_id=m.identity,
                in_reply_to=m.inbound.parsed.in_reply_to,
                mailbox_id=self.mailbox.id,
                auto_reply=m.kind.kind == "auto_reply",
                actor=Actor("user", user_of(m)),
                attachment_ids=m.files.ids,
                original_html=m.inbound.parsed.html,
            )
            for m, ticket_id in current.replies
        ]
        results = await add_customer_messages(session, workspace_id=ws, items=replies)
        for (message, _), result in zip(current.replies, results, strict=True):
            comment_id = result.comment.id if result.comment is not None else None
            outcome = "created" if result.new_ticket else "commented"
            self._done(message, IngestResult(outcome, result.ticket.id, comment_id))

    def _cc(self, message: _Message) -> list[str]:
        sender = message.inbound.parsed.sender
        assert sender is not None
        return _cc_of(message.inbound.parsed, self.context.own, sender.email)

    def _done(self, message: _Message, result: IngestResult) -> None:
        """A message written: its ledger row and audit row, and where later ones find it."""
        assert result.ticket_id is not None
        message.result = result
        self.threads[message.identity] = result.ticket_id
        if message.inbound.conversation_id:
            self.conversations[message.inbound.conversation_id] = result.ticket_id
        row = ledger_values(self.mailbox, message.inbound, message.identity, message.kind)
        row.update(state="processed", error=None)
        row.update(ticket_id=result.ticket_id, comment_id=result.comment_id)
        self.rows.append((message.index, row))
        record(
            self.session,
            workspace_id=self.mailbox.workspace_id,
            actor=SYSTEM,
            verb="email.received",
            subject_type="ticket",
            subject_id=result.ticket_id,
            after={
                "mailboxId": self.mailbox.id,
                "messageId": message.identity,
                "classification": message.kind.kind,
                "threadedBy": message.thread_how,
                "commentId": result.comment_id,
                "attachments": message.files.meta,
            },
        )


def _subject(message: _Message) -> str:
    return (message.inbound.parsed.subject or "").strip()[:MAX_SUBJECT] or "(no subject)"


def _alone(message: _Message) -> bool:
    """Whether the message goes through `ingest()` by itself: one without a sender address
    fails there and is kept as a dead letter of its own."""
    if message.kind.kind in ("loop", "bounce"):
        return False
    sender = message.inbound.parsed.sender
    return sender is None or "@" not in sender.email


async def ingest_batch(
    runtime: Runtime,
    mailbox: Mailbox,
    fetched: Sequence[tuple[Inbound, bytes | None]],
    context: Context,
) -> list[IngestResult]:
    """The results of `ingest()` for each fetched (message, raw bytes), in order, for
    messages the ledger did not know when the batch was read (`known_messages`): one
    transaction for the batch, each message alone again if it does not commit."""
    batch: list[_Message] = []
    results: list[IngestResult | None] = [None] * len(fetched)
    identities: set[str] = set()
    providers: set[str] = set()
    for index, (inbound, raw) in enumerate(fetched):
        identity = identity_of(inbound.parsed, raw)
        provider = inbound.provider_id
        if identity in identities or (provider is not None and provider in providers):
            results[index] = IngestResult("duplicate")  # a second copy in the same batch
            continue
        identities.add(identity)
        if provider is not None:
            providers.add(provider)
        batch.append(_Message(index, inbound, raw, identity, classify(inbound.parsed, context.own)))
    together = [m for m in batch if not _alone(m)]
    keeping = [m for m in together if m.kind.kind not in ("loop", "bounce")]
    # storage that is down raises (and removes what it wrote): the cursor stays
    stored = await store_files_of(
        runtime, mailbox.workspace_id, [m.inbound.parsed for m in keeping]
    )
    for message, files in zip(keeping, stored, strict=True):
        message.files = files
    try:
        await _commit(runtime, mailbox, context, together)
    except Exception as exc:  # each message alone: its own claim, its own failure
        log.info("mailbox %s: a batch of %d went one by one: %s", mailbox.id, len(together), exc)
        await _discard(runtime, mailbox, together)
        for message in together:
            message.result = None
    else:
        await _discard(runtime, mailbox, [m for m in together if _ignored(m)])
    for message in batch:
        if message.result is None:
            message.result = await ingest(
                runtime, mailbox, message.inbound, raw=message.raw, context=context, checked=True
            )
        results[message.index] = message.result
    return [r if r is not None else IngestResult("duplicate") for r in results]


def _ignored(message: _Message) -> bool:
    return message.result is not None and message.result.outcome == "ignored"


async def _discard(runtime: Runtime, mailbox: Mailbox, batch: Sequence[_Message]) -> None:
    ids = [i for m in batch for i in m.files.ids]
    if ids:
        await discard_unlinked(runtime, workspace_id=mailbox.workspace_id, ids=ids)


async def _commit(
    runtime: Runtime, mailbox: Mailbox, context: Context, batch: Sequence[_Message]
) -> None:
    if not batch:
        return
    async with runtime.db.session() as session, unit(session):
        known = await _known(session, mailbox, batch)
        async with search.deferred(session):  # one rebuild for the whole batch
            await _Batch(session, runtime, mailbox, context, known).run(batch)
