"""One received message → a ticket or a comment, exactly once.

`ingest()` is the path of one message: the syncs (IMAP, Graph) ingest a fetched batch
together (`batch.ingest_batch`, the same steps set-based) and come here for each message of a
batch that did not commit, and `enque email retry` for each dead letter. In one
transaction it writes the ledger row (`email_messages`, unique on (workspace, Message-ID) and
(mailbox, provider id)) and the ticket or comment, through the same service functions the API
uses (audit, events and automations after commit). Two ingests of one message cannot both
commit: the second fails on the unique constraint and is reported as a duplicate.

Files: attachments and inline images within the limits are stored through the attachments
domain before the transaction, as unlinked files, and linked inside it to the comment (or to
the first message of the new ticket); `cid:` images point to their download URLs. An ingest
that does not commit removes its files; one that dies leaves unlinked files, which the orphan
sweep removes. Files over a limit are listed in the message as placeholders, and every part's
metadata is kept in the audit row of the message (`email.received`).
"""

from __future__ import annotations

import hashlib
import html as htmllib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import SYSTEM, Actor, record
from enque.attachments.service import (
    AttachmentLinks,
    ReceivedFile,
    content_url,
    discard_unlinked,
    is_refused,
    sniff_type,
    store_received,
)
from enque.comments.service import IncomingMessage, add_customer_message
from enque.core.db import now, unit
from enque.core.errors import ApiError
from enque.core.runtime import Runtime
from enque.core.storage import storage_of
from enque.customers.service import find_or_create_customer
from enque.email.classify import Classification, classify
from enque.email.errors import TemporaryError
from enque.email.parse import Attachment, ParsedMessage
from enque.email.sanitize import cid_references, rewrite_cids, text_to_html
from enque.email.threading import DEFAULT_TOKEN, ticket_number
from enque.mailboxes.models import EmailMessage, Mailbox
from enque.mailboxes.service import workspace_addresses
from enque.tickets import service as tickets
from enque.tickets.models import Ticket

log = logging.getLogger(__name__)

MAX_MESSAGE_FILES_BYTES = 100 * 1024 * 1024
MAX_MESSAGE_FILES = 100
MAX_ID = 900
MAX_SUBJECT = 1000


@dataclass
class Inbound:
    """A fetched message: parsed, with the channel's own id for it."""

    parsed: ParsedMessage
    provider_id: str | None
    conversation_id: str | None = None


@dataclass
class IngestResult:
    # created (new ticket), commented (on a ticket), ignored (loop, bounce, unmatched
    # auto-reply), duplicate (seen before), failed (kept in the ledger with the error)
    outcome: str
    ticket_id: str | None = None
    comment_id: str | None = None
    reason: str | None = None
    ledger_id: str | None = None  # the dead letter of a failed message


@dataclass(frozen=True)
class StoredFile:
    id: str
    content_id: str | None


@dataclass
class _Files:
    """Every file part of a message: `meta` for each (placeholders included), `stored` for
    those kept, in order."""

    meta: list[dict[str, Any]] = field(default_factory=list)
    stored: list[StoredFile] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [f.id for f in self.stored]

    def urls(self) -> dict[str, str]:
        """Content id → download URL, for the `cid:` images of the body."""
        return {f.content_id: content_url(f.id) for f in self.stored if f.content_id}


def identity_of(parsed: ParsedMessage, raw: bytes | None = None) -> str:
    """The message's identity: its Message-ID, else a digest of what it says."""
    if parsed.message_id:
        ident = parsed.message_id.strip().strip("<>")
        if len(ident) <= MAX_ID:
            return ident
    digest = hashlib.sha256()
    if raw is not None and not parsed.message_id:
        digest.update(raw)
    else:
        for part in (
            parsed.message_id or "",
            parsed.subject,
            str(parsed.date),
            ",".join(a.email for a in parsed.from_),
            parsed.text,
        ):
            digest.update(part.encode("utf-8", "replace") + b"\0")
    return f"{digest.hexdigest()}@no-message-id.enque"


# ---------------------------------------------------------------- lookups


@dataclass(frozen=True)
class Context:
    """What a sync reads once for all the messages it ingests."""

    own: frozenset[str]  # every live mailbox address of the workspace (mail from them: a loop)
    token_template: str = DEFAULT_TOKEN


async def context_for(runtime: Runtime, mailbox: Mailbox) -> Context:
    async with runtime.db.session(write=False) as session:
        own = set(await workspace_addresses(session, workspace_id=mailbox.workspace_id))
    own.add(mailbox.email.lower())
    return Context(frozenset(own))


async def known_messages(
    runtime: Runtime, mailbox: Mailbox, keys: Sequence[tuple[str, str | None]]
) -> list[bool]:
    """For each (identity, provider id): whether the ledger holds that message already, by
    identity in the workspace or by provider id in the mailbox. One query for them all."""
    if not keys:
        return []
    identities = [identity for identity, _ in keys]
    providers = [provider for _, provider in keys if provider is not None]
    match = and_(
        EmailMessage.workspace_id == mailbox.workspace_id,
        EmailMessage.internet_message_id.in_(identities),
    )
    if providers:
        match = or_(
            match,
            and_(EmailMessage.mailbox_id == mailbox.id, EmailMessage.provider_id.in_(providers)),
        )
    async with runtime.db.session(write=False) as session:
        rows = (
            await session.execute(
                select(
                    EmailMessage.workspace_id,
                    EmailMessage.internet_message_id,
                    EmailMessage.mailbox_id,
                    EmailMessage.provider_id,
                ).where(match)
            )
        ).all()
    held_ids = {r[1] for r in rows if r[0] == mailbox.workspace_id}
    held_providers = {r[3] for r in rows if r[2] == mailbox.id}
    return [
        identity in held_ids or (provider is not None and provider in held_providers)
        for identity, provider in keys
    ]


async def _by_message_ids(session: AsyncSession, workspace_id: str, ids: list[str]) -> str | None:
    if not ids:
        return None
    rows = await session.execute(
        select(EmailMessage.internet_message_id, EmailMessage.ticket_id).where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.internet_message_id.in_(ids),
            EmailMessage.ticket_id.is_not(None),
        )
    )
    found = {mid: tid for mid, tid in rows}
    for mid in ids:
        if mid in found:
            return found[mid]
    rows = await session.execute(
        select(Ticket.root_message_id, Ticket.id).where(
            Ticket.workspace_id == workspace_id, Ticket.root_message_id.in_(ids)
        )
    )
    roots = {mid: tid for mid, tid in rows}
    return next((roots[m] for m in ids if m in roots), None)


async def _by_conversation(
    session: AsyncSession, mailbox: Mailbox, conversation_id: str | None
) -> str | None:
    if not conversation_id:
        return None
    row = (
        await session.execute(
            select(EmailMessage.ticket_id)
            .where(
                EmailMessage.mailbox_id == mailbox.id,
                EmailMessage.conversation_id == conversation_id,
                EmailMessage.ticket_id.is_not(None),
            )
            .order_by(EmailMessage.created_at.desc(), EmailMessage.id.desc())
            .limit(1)
        )
    ).first()
    if row is not None:
        return str(row[0])
    ticket = await tickets.ticket_by_conversation(
        session,
        workspace_id=mailbox.workspace_id,
        mailbox_id=mailbox.id,
        conversation_id=conversation_id,
    )
    return ticket.id if ticket else None


@dataclass
class Thread:
    """The ticket a message belongs to, by id; the ticket itself is read only where a rule
    looks at it (a subject token), the rest is read, locked, by whoever writes to it."""

    ticket_id: str | None
    how: str | None  # references, conversation, token
    ticket: Ticket | None = None


async def find_thread(
    session: AsyncSession,
    mailbox: Mailbox,
    parsed: ParsedMessage,
    conversation_id: str | None,
    token_template: str = DEFAULT_TOKEN,
) -> Thread:
    """In-Reply-To/References, then the Graph conversation, then a subject token; never the
    subject alone. Every lookup stays in the mailbox's workspace."""
    ws = mailbox.workspace_id
    ids = [i for i in [parsed.in_reply_to, *reversed(parsed.references)] if i]
    ids = list(dict.fromkeys(i.strip().strip("<>") for i in ids))
    ticket_id = await _by_message_ids(session, ws, ids)
    if ticket_id:
        return Thread(ticket_id, "references")
    ticket_id = await _by_conversation(session, mailbox, conversation_id)
    if ticket_id:
        return Thread(ticket_id, "conversation")
    number = ticket_number(parsed.subject, token_template)
    if number is not None:
        ticket = await tickets.ticket_by_number(session, workspace_id=ws, number=number)
        if ticket is not None:
            return Thread(ticket.id, "token", ticket)
    return Thread(None, None)


async def _is_participant(session: AsyncSession, ticket: Ticket, address: str) -> bool:
    from enque.customers.models import User

    address = address.lower()
    if any(c.lower() == address for c in ticket.cc or []):
        return True
    customer = await session.get(User, ticket.user_id)
    return customer is not None and customer.email.lower() == address


# ---------------------------------------------------------------- bodies and files


def _body_html(parsed: ParsedMessage) -> str:
    if parsed.html:
        return parsed.html
    return text_to_html(parsed.text) if parsed.text.strip() else ""


def folded_html(parsed: ParsedMessage) -> str:
    """The new part of a reply, its quoted history folded into a `<details>` block."""
    from enque.email.quotes import fold  # lxml: on the first message

    result = fold(parsed.text, parsed.html)
    if parsed.html:
        if result.html_quoted and result.html and result.html.strip():
            return f"{result.html}<details><summary>…</summary>{result.html_quoted}</details>"
        return parsed.html
    if result.text_quoted and result.text.strip():
        quoted = text_to_html(result.text_quoted)
        return f"{text_to_html(result.text)}<details><summary>…</summary>{quoted}</details>"
    return _body_html(parsed)


def _file_meta(att: Attachment, omitted: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "filename": att.filename,
        "contentType": att.content_type,
        "size": att.size,
        "contentId": att.content_id,
        "inline": att.inline,
    }
    if att.note:
        meta["note"] = att.note
    if omitted:
        meta["omitted"] = omitted
    return meta


def _file_parts(
    runtime: Runtime, parsed: ParsedMessage
) -> tuple[list[tuple[Attachment, str]], _Files]:
    """The parts to store with their sniffed types, and the metadata of every part (refused
    ones as placeholders)."""
    per_file = runtime.settings.max_upload_bytes
    files = _Files()
    kept: list[tuple[Attachment, str]] = []
    total = 0
    for att in parsed.attachments:
        refused, kind = None, ""
        if att.size > per_file:
            refused = f"larger than {runtime.settings.max_upload_mb} MB"
        elif len(kept) >= MAX_MESSAGE_FILES:
            refused = f"more than {MAX_MESSAGE_FILES} files in the message"
        elif total + att.size > MAX_MESSAGE_FILES_BYTES:
            refused = "the message's files are over the limit"
        elif is_refused(kind := sniff_type(att.data)):
            refused = f"files of type {kind} are not accepted"
        files.meta.append(_file_meta(att, refused))
        if refused is None:
            total += att.size
            kept.append((att, kind))
    return kept, files


async def _store_files(runtime: Runtime, workspace_id: str, parsed: ParsedMessage) -> _Files:
    """Size limits (placeholders for what is over), then the kept parts to storage, unlinked.

    A storage failure raises `TemporaryError`: the sync stops there and fetches again later."""
    return (await store_files_of(runtime, workspace_id, [parsed]))[0]


async def store_files_of(
    runtime: Runtime, workspace_id: str, messages: Sequence[ParsedMessage]
) -> list[_Files]:
    """`_store_files` for several messages: every kept part stored in one go (one transaction
    for the rows), each message's files in order."""
    found = [_file_parts(runtime, parsed) for parsed in messages]
    received = []
    for parsed, (kept, _) in zip(messages, found, strict=True):
        cited = cid_references(parsed.html or "") if kept else set()
        received += [
            ReceivedFile(
                a.filename, a.data, a.content_id, bool(a.content_id) and a.content_id in cited, kind
            )
            for a, kind in kept
        ]
    if not received:
        return [files for _, files in found]
    try:
        rows = iter(await store_received(runtime, workspace_id=workspace_id, received=received))
    except Exception as exc:
        log.warning("storing the files of a message failed: %s", exc)
        raise TemporaryError(f"file storage failed: {exc.__class__.__name__}") from exc
    for kept, files in found:
        files.stored = [StoredFile(r.id, r.content_id) for r in itertools.islice(rows, len(kept))]
        stored = iter(files.stored)
        for meta in files.meta:
            if "omitted" not in meta:
                meta["attachmentId"] = next(stored).id
    return [files for _, files in found]


def _placeholders(files: _Files) -> str:
    omitted = [m for m in files.meta if "omitted" in m]
    if not omitted:
        return ""
    items = "".join(
        f"<li>{htmllib.escape(m['filename'])} ({m['size']} bytes): {htmllib.escape(m['omitted'])}"
        "</li>"
        for m in omitted
    )
    return f"<p>Attachments not stored:</p><ul>{items}</ul>"


# ---------------------------------------------------------------- the pipeline


async def _checked_defaults(session: AsyncSession, mailbox: Mailbox) -> dict[str, Any]:
    """The mailbox's routing defaults that still name live things (others are left out)."""
    wanted = {
        "team_id": mailbox.team_id,
        "category_id": mailbox.default_category_id,
        "assignee_id": mailbox.default_assignee_id,
    }
    kept: dict[str, Any] = {}
    for key, value in wanted.items():
        if not value:
            continue
        try:
            await tickets.check_references(session, mailbox.workspace_id, {key: value})
        except ApiError:
            log.warning("mailbox %s: default %s %s is gone", mailbox.id, key, value)
            continue
        kept[key] = value
    if mailbox.default_priority:
        kept["priority"] = mailbox.default_priority
    return kept


def _cc_of(parsed: ParsedMessage, own: frozenset[str], sender: str) -> list[str]:
    found = []
    for addr in [*parsed.to, *parsed.cc]:
        low = addr.email.lower()
        if low in own or low == sender.lower():
            continue
        found.append(addr.email)
    return tickets.addresses(found)


async def _process(
    session: AsyncSession,
    runtime: Runtime,
    mailbox: Mailbox,
    inbound: Inbound,
    row: EmailMessage,
    kind: Classification,
    files: _Files,
    context: Context,
) -> IngestResult:
    parsed = inbound.parsed
    ws = mailbox.workspace_id
    if kind.kind in ("loop", "bounce"):
        row.state = "ignored"
        row.error = "; ".join(kind.reasons)[:2000]
        return IngestResult("ignored", reason=kind.kind)
    sender = parsed.sender
    if sender is None or "@" not in sender.email:
        raise ValueError("the message has no sender address")

    thread = await find_thread(
        session, mailbox, parsed, inbound.conversation_id, context.token_template
    )
    if kind.kind == "auto_reply" and thread.ticket_id is None:
        row.state = "ignored"
        row.error = "; ".join(kind.reasons)[:2000]
        return IngestResult("ignored", reason="auto_reply")

    user = await find_or_create_customer(session, ws, sender.email, sender.name or None)
    actor = Actor("user", user.id)
    cc = _cc_of(parsed, context.own, sender.email)
    subject = (parsed.subject or "").strip()[:MAX_SUBJECT] or "(no subject)"
    urls = files.urls()
    ticket_id, linked = thread.ticket_id, None
    token = thread.ticket  # only a subject token is checked against who writes
    if token is not None and not await _is_participant(session, token, sender.email):
        ticket_id, linked = None, token.id  # someone else's thread: a new ticket, linked

    comment_id: str | None = None
    if ticket_id is not None:
        content = rewrite_cids(folded_html(parsed), urls) + _placeholders(files)
        result = await add_customer_message(
            session,
            workspace_id=ws,
            message=IncomingMessage(
                ticket_id=ticket_id,
                user_id=user.id,
                content=content,
                subject=subject,
                to=[a.email for a in parsed.to],
                cc=cc,
                message_id=row.internet_message_id,
                in_reply_to=parsed.in_reply_to,
                mailbox_id=mailbox.id,
                auto_reply=kind.kind == "auto_reply",
                actor=actor,
                attachment_ids=files.ids,
                original_html=parsed.html,
            ),
        )
        target = result.ticket
        if result.comment is not None:
            comment_id = result.comment.id
        outcome = "created" if result.new_ticket else "commented"
    else:
        body = rewrite_cids(_body_html(parsed), urls) + _placeholders(files)
        target = await tickets.create_ticket(
            session,
            workspace_id=ws,
            ticket=tickets.NewTicket(
                actor=actor,
                subject=subject,
                body=body,
                user_id=user.id,
                mailbox_id=mailbox.id,
                cc=cc,
                conversation_id=inbound.conversation_id,
                root_message_id=row.internet_message_id,
                linked_ticket_id=linked,
                **await _checked_defaults(session, mailbox),
            ),
        )
        if files.ids:
            await AttachmentLinks().link(
                session, workspace_id=ws, ticket_id=target.id, comment_id=None,
                attachment_ids=files.ids,
            )  # fmt: skip
        outcome = "created"

    row.state = "processed"
    row.ticket_id = target.id
    row.comment_id = comment_id
    record(
        session,
        workspace_id=ws,
        actor=SYSTEM,
        verb="email.received",
        subject_type="ticket",
        subject_id=target.id,
        after={
            "mailboxId": mailbox.id,
            "messageId": row.internet_message_id,
            "classification": kind.kind,
            "threadedBy": thread.how,
            "commentId": comment_id,
            "attachments": files.meta,
        },
    )
    return IngestResult(outcome, target.id, comment_id)


def ledger_values(
    mailbox: Mailbox, inbound: Inbound, identity: str, kind: Classification | None = None
) -> dict[str, Any]:
    """The columns of a received message's ledger row (`state` pending)."""
    parsed = inbound.parsed
    return {
        "workspace_id": mailbox.workspace_id,
        "mailbox_id": mailbox.id,
        "direction": "in",
        "provider_id": inbound.provider_id,
        "internet_message_id": identity,
        "in_reply_to": (parsed.in_reply_to or None) and parsed.in_reply_to[:MAX_ID],
        "references": [r[:MAX_ID] for r in parsed.references[-40:]],
        "conversation_id": (inbound.conversation_id or None)
        and (inbound.conversation_id or "")[:255],
        "raw_size": parsed.raw_size,
        "received_at": parsed.date or now(),
        "state": "pending",
        "classification": kind.kind if kind is not None else None,
    }


def _ledger_row(
    mailbox: Mailbox, inbound: Inbound, identity: str, kind: Classification | None = None
) -> EmailMessage:
    return EmailMessage(**ledger_values(mailbox, inbound, identity, kind))


async def _take_over(session: AsyncSession, failed: EmailMessage) -> bool:
    """Remove the failed row a retry replaces (False when it is no longer failed)."""
    gone = await session.execute(
        delete(EmailMessage).where(EmailMessage.id == failed.id, EmailMessage.state == "failed")
    )
    return bool(getattr(gone, "rowcount", 0))


def dead_letter_key(workspace_id: str, ledger_id: str) -> str:
    """Where the raw copy of a failed message is kept in storage."""
    return f"{workspace_id}/email-dead-letters/{ledger_id}.eml"


async def keep_dead_letter(runtime: Runtime, workspace_id: str, ledger_id: str, raw: bytes) -> None:
    """Keep the raw message of a failed ledger row, for `enque email retry`."""
    try:
        await storage_of(runtime).put_bytes(
            dead_letter_key(workspace_id, ledger_id), raw, content_type="message/rfc822"
        )
    except Exception:
        log.exception("could not keep the raw copy of failed message %s", ledger_id)


async def _record_failure(
    runtime: Runtime,
    mailbox: Mailbox,
    inbound: Inbound,
    identity: str,
    error: str,
    raw: bytes | None,
    replacing: EmailMessage | None,
) -> IngestResult:
    """A message that could not be processed: kept in the ledger (dead letter) with the error,
    so the cursor can move on and the ledger stops it from being fetched in a loop; its raw
    copy (when the channel gave one) is kept in storage. A retry that failed again updates
    the error of the row it was retrying."""
    async with runtime.db.session() as session:
        try:
            async with unit(session):
                if replacing is not None:
                    await session.execute(
                        update(EmailMessage)
                        .where(EmailMessage.id == replacing.id)
                        .values(error=error[:4000], updated_at=now())
                    )
                    return IngestResult("failed", reason=error, ledger_id=replacing.id)
                row = _ledger_row(mailbox, inbound, identity)
                row.state = "failed"
                row.error = error[:4000]
                session.add(row)
        except IntegrityError:
            return IngestResult("duplicate")
    if raw is not None:
        await keep_dead_letter(runtime, mailbox.workspace_id, row.id, raw)
    return IngestResult("failed", reason=error, ledger_id=row.id)


async def ingest(
    runtime: Runtime,
    mailbox: Mailbox,
    inbound: Inbound,
    *,
    raw: bytes | None = None,
    context: Context | None = None,
    checked: bool = False,
    replacing: EmailMessage | None = None,
) -> IngestResult:
    """Turn one fetched message into a ticket or comment, at most once per mailbox/workspace.

    A sync passes its `context` (else it is read here) and `checked=True` when it has just
    asked `known_messages` about this message (else the ledger is read first): a cheap read
    that spares known messages any work. The unique constraints remain the guarantee.
    `replacing` is the failed ledger row of this message that a retry processes again: it
    is replaced in the same transaction (or keeps the new error).
    """
    identity = identity_of(inbound.parsed, raw)
    if replacing is not None:
        identity, checked = replacing.internet_message_id or identity, True
    key = [(identity, inbound.provider_id)]
    if not checked and (await known_messages(runtime, mailbox, key))[0]:
        return IngestResult("duplicate")
    context = context or await context_for(runtime, mailbox)
    kind = classify(inbound.parsed, context.own)
    # storage that is down raises: the cursor stays, the next sync tries again
    files = (
        _Files()
        if kind.kind in ("loop", "bounce")
        else await _store_files(runtime, mailbox.workspace_id, inbound.parsed)
    )
    failure: str | None = None
    result: IngestResult | None = None
    async with runtime.db.session() as session:
        try:
            async with unit(session):
                if replacing is not None and not await _take_over(session, replacing):
                    done = IngestResult("duplicate")  # retried meanwhile by someone else
                else:
                    row = _ledger_row(mailbox, inbound, identity, kind)
                    done = await _process(
                        session, runtime, mailbox, inbound, row, kind, files, context
                    )
                    # Written with its outcome, in one statement; the unique constraints
                    # decide at the commit (the sync's ledger read spared known messages).
                    session.add(row)
            result = done  # committed
        except IntegrityError:
            pass  # was it this message, committed meanwhile by another sync?
        except Exception as exc:
            log.warning("mailbox %s: message %s failed: %s", mailbox.id, identity, exc)
            failure = f"{exc.__class__.__name__}: {exc}"
    if result is not None and result.outcome != "duplicate" and replacing is not None:
        await storage_of(runtime).delete(dead_letter_key(mailbox.workspace_id, replacing.id))
    if result is not None and result.outcome not in ("ignored", "duplicate"):
        return result
    # nothing links the stored files: they go now
    await discard_unlinked(runtime, workspace_id=mailbox.workspace_id, ids=files.ids)
    if result is not None:
        return result
    if failure is not None:
        return await _record_failure(runtime, mailbox, inbound, identity, failure, raw, replacing)
    if (await known_messages(runtime, mailbox, key))[0]:
        return IngestResult("duplicate")
    raise RuntimeError(f"message {identity} hit a constraint but is not in the ledger")
