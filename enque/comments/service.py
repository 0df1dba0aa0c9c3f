"""The thread of a ticket: public replies, internal notes, customer messages.

Sending seam: a reply is stored with `delivery="pending"` and `comment.created` is emitted after
commit; the email domain registers a reaction that sends pending replies and reports back with
`record_delivery`. Customer messages come from email ingest through `add_customer_message`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from enque.activity.service import SYSTEM, Actor, record
from enque.agents.models import Agent
from enque.comments.models import Comment
from enque.comments.schemas import AuthorOut, CommentOut
from enque.core.api import PageParams, dump
from enque.core.db import now, unit
from enque.core.errors import ApiError, forbidden, not_found, validation_error
from enque.core.events import Event, emit
from enque.core.html import html_to_text, sanitize_html
from enque.core.pagination import Page, SortKey, keyset_page
from enque.core.runtime import runtime_of
from enque.customers.models import User
from enque.tickets import service as tickets
from enque.tickets.models import Ticket
from enque.tickets.queries import summaries
from enque.tickets.seams import FileLink, attachments
from enque.tickets.service import (
    active_agent_ids,
    addresses,
    apply_changes,
    channels,
    create_ticket,
    create_tickets,
    ensure_open_for_change,
    get_ticket,
    publish_changes,
    touch,
)

Author = aliased(Agent)
MAX_MERGE_HOPS = 5


# ---------------------------------------------------------------- reading


def _thread_query() -> Select[Any]:
    return (
        select(Comment, Author.display_name, User.name)
        .outerjoin(Author, and_(Comment.author_type == "agent", Author.id == Comment.author_id))
        .outerjoin(User, and_(Comment.author_type == "user", User.id == Comment.author_id))
    )


def _out(
    comment: Comment, agent_name: str | None, user_name: str | None, files: list[dict[str, Any]]
) -> CommentOut:
    return CommentOut(
        id=comment.id,
        ticket_id=comment.ticket_id,
        kind=comment.kind,
        author=AuthorOut(
            type=comment.author_type, id=comment.author_id, name=agent_name or user_name
        ),
        content=comment.content,
        text=comment.text,
        to=comment.to or [],
        cc=comment.cc or [],
        bcc=comment.bcc or [],
        mentions=comment.mentions or [],
        message_id=comment.message_id,
        in_reply_to=comment.in_reply_to,
        delivery=comment.delivery,
        delivery_error=comment.delivery_error,
        delivery_attempts=comment.delivery_attempts,
        attachments=files,
        created_at=comment.created_at,
        updated_at=comment.updated_at,
    )


async def _views(
    session: AsyncSession, workspace_id: str, rows: Sequence[Any], *, with_files: bool = True
) -> list[CommentOut]:
    store = attachments(session)
    files: dict[str, list[dict[str, Any]]] = {}
    if with_files and store is not None and rows:
        files = await store.for_comments(
            session, workspace_id=workspace_id, comment_ids=[r[0].id for r in rows]
        )
    return [_out(c, agent, user, files.get(c.id, [])) for c, agent, user in rows]


async def comment_view(
    session: AsyncSession, workspace_id: str, comment_id: str, *, with_files: bool = True
) -> CommentOut:
    """One comment as the API shows it; `with_files=False` for one known to have no files (a
    new comment written without), whose files are not read."""
    found = await comment_views(session, workspace_id, [comment_id], with_files=with_files)
    if comment_id not in found:
        raise not_found("Comment")
    return found[comment_id]


async def comment_views(
    session: AsyncSession, workspace_id: str, comment_ids: Sequence[str], *, with_files: bool = True
) -> dict[str, CommentOut]:
    """Comments as the API shows them, by id, in one query (and one for their files)."""
    rows = (
        await session.execute(
            _thread_query().where(
                Comment.workspace_id == workspace_id, Comment.id.in_(list(comment_ids))
            )
        )
    ).all()
    views = await _views(session, workspace_id, rows, with_files=with_files)
    return {view.id: view for view in views}


async def list_comments(
    session: AsyncSession, *, workspace_id: str, ticket_id: str, page: PageParams
) -> Page[CommentOut]:
    """The thread, oldest first; a constant number of queries per page."""
    await get_ticket(session, workspace_id=workspace_id, ticket_id=ticket_id)
    stmt = _thread_query().where(
        Comment.workspace_id == workspace_id,
        Comment.ticket_id == ticket_id,
        Comment.deleted_at.is_(None),
    )
    keys = [SortKey(Comment.created_at), SortKey(Comment.id)]
    result = await keyset_page(
        session, stmt, keys, page, lambda r: (r[0].created_at, r[0].id), scalars=False
    )
    return Page(await _views(session, workspace_id, result.items), result.next_cursor, result.total)


# ---------------------------------------------------------------- writing


def _body(content: str) -> tuple[str, str]:
    sanitized = sanitize_html(content)
    text = html_to_text(sanitized)
    if not text and "<img" not in sanitized:
        raise validation_error("content", "the message is empty")
    return sanitized, text


async def _link_files(
    session: AsyncSession,
    workspace_id: str,
    ticket_id: str,
    comment_id: str | None,
    attachment_ids: Sequence[str],
) -> None:
    """Files onto a comment, or (`comment_id=None`) onto the ticket's first message."""
    if not attachment_ids:
        return
    store = attachments(session)
    if store is None:
        raise validation_error("attachmentIds", "attachments are not available")
    await store.link(
        session,
        workspace_id=workspace_id,
        ticket_id=ticket_id,
        comment_id=comment_id,
        attachment_ids=list(dict.fromkeys(attachment_ids)),
    )


async def _link_many(session: AsyncSession, workspace_id: str, links: Sequence[FileLink]) -> None:
    """`_link_files` for several comments or first messages, in one update."""
    links = [
        link._replace(attachment_ids=list(dict.fromkeys(link.attachment_ids))) for link in links
    ]
    if not any(link.attachment_ids for link in links):
        return
    store = attachments(session)
    if store is None:
        raise validation_error("attachmentIds", "attachments are not available")
    await store.link_many(session, workspace_id=workspace_id, links=links)


async def _publish_comment(
    session: AsyncSession,
    ticket: Ticket,
    comment: Comment,
    diff: dict[str, list[Any]],
    actor: Actor,
    *,
    with_files: bool,
) -> None:
    """Flush, audit, search document, `ticket.updated` and `comment.created` (`with_files`:
    whether files were linked to the new comment)."""
    await publish_changes(session, ticket, diff, actor)
    record(
        session,
        workspace_id=ticket.workspace_id,
        actor=actor,
        verb="comment.created",
        subject_type="ticket",
        subject_id=ticket.id,
        after={"commentId": comment.id, "kind": comment.kind},
    )
    await tickets.search.reindex_tickets(session, ticket.workspace_id, [ticket.id])
    view = await comment_view(session, ticket.workspace_id, comment.id, with_files=with_files)
    emit(
        session,
        Event(
            "comment.created",
            ticket.workspace_id,
            {"ticketId": ticket.id, "comment": dump(view)},
            channels=channels(ticket.id),
            actor=actor.as_dict(),
        ),
    )


async def _signed(
    session: AsyncSession, workspace_id: str, actor: Actor, sanitized: str, text: str
) -> tuple[str, str]:
    """The reply with the signatures appended (`runtime.services["signatures"]`, if any)."""
    signatures = runtime_of(session).services.get("signatures")
    extra = await signatures(session, workspace_id=workspace_id, actor=actor) if signatures else ""
    if not extra:
        return sanitized, text
    signed = sanitize_html(sanitized + extra)
    return signed, html_to_text(signed)


def _touched(ticket: Ticket, diff: dict[str, list[Any]], before: int) -> dict[str, list[Any]]:
    touch(ticket)
    return {**diff, "updatedAt": [before, ticket.updated_at]}


async def add_reply(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    ticket_id: str,
    content: str,
    to: Sequence[str] = (),
    cc: Sequence[str] | None = None,
    bcc: Sequence[str] = (),
    attachment_ids: Sequence[str] = (),
    status: str | None = None,
) -> Comment:
    """A public reply to the customer, stored `pending` for the email domain to send.

    Goes to the customer (plus `to`), CC as given or as carried on the ticket. `status` is set in
    the same change; without it an `Unread` ticket becomes `Open`. The first reply by an agent
    stamps `first_response_at`.
    """
    sanitized, text = _body(content)
    async with unit(session):
        ticket = await get_ticket(
            session, workspace_id=workspace_id, ticket_id=ticket_id, lock=True
        )
        ensure_open_for_change(ticket)
        sanitized, text = await _signed(session, workspace_id, actor, sanitized, text)
        customer = await session.get_one(User, ticket.user_id)
        comment = Comment(
            workspace_id=workspace_id,
            ticket_id=ticket.id,
            kind="reply",
            author_type=actor.type,
            author_id=actor.id,
            content=sanitized,
            text=text,
            to=addresses([customer.email, *to]),
            cc=addresses(ticket.cc if cc is None else cc),
            bcc=addresses(bcc),
            delivery="pending",
        )
        session.add(comment)
        await session.flush()
        await _link_files(session, workspace_id, comment.ticket_id, comment.id, attachment_ids)
        before = ticket.updated_at
        changes: dict[str, Any] = {"is_read": True}
        if status is not None:
            changes["status"] = status
        elif ticket.status == "Unread":
            changes["status"] = "Open"
        diff = await apply_changes(session, ticket, changes)
        moment = now()
        stamps = {"last_agent_reply_at": moment}
        if actor.type == "agent" and ticket.first_response_at is None:
            stamps["first_response_at"] = moment
        for key, value in stamps.items():
            diff[to_camel(key)] = [getattr(ticket, key), value]
            setattr(ticket, key, value)
        await _publish_comment(
            session,
            ticket,
            comment,
            _touched(ticket, diff, before),
            actor,
            with_files=bool(attachment_ids),
        )
    return comment


async def add_note(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    ticket_id: str,
    content: str,
    mentions: Sequence[str] = (),
    attachment_ids: Sequence[str] = (),
) -> Comment:
    """An internal note, never sent to customers; `mentions` are agents of the workspace."""
    sanitized, text = _body(content)
    wanted = list(dict.fromkeys(mentions))
    async with unit(session):
        ticket = await get_ticket(
            session, workspace_id=workspace_id, ticket_id=ticket_id, lock=True
        )
        ensure_open_for_change(ticket)
        unknown = set(wanted) - await active_agent_ids(session, workspace_id, wanted)
        if unknown:
            raise validation_error(
                "mentions", "no such agent in this workspace: " + ", ".join(sorted(unknown))
            )
        comment = Comment(
            workspace_id=workspace_id,
            ticket_id=ticket.id,
            kind="note",
            author_type=actor.type,
            author_id=actor.id,
            content=sanitized,
            text=text,
            mentions=wanted,
        )
        session.add(comment)
        await session.flush()
        await _link_files(session, workspace_id, comment.ticket_id, comment.id, attachment_ids)
        before = ticket.updated_at
        await _publish_comment(
            session,
            ticket,
            comment,
            _touched(ticket, {}, before),
            actor,
            with_files=bool(attachment_ids),
        )
    return comment


@dataclass
class CustomerMessage:
    """Where a customer's message went: a comment on `ticket`, or a new ticket (`comment` None)."""

    ticket: Ticket
    comment: Comment | None
    new_ticket: bool


@dataclass
class IncomingMessage:
    """One message of `add_customer_messages` (the arguments of `add_customer_message`)."""

    ticket_id: str
    user_id: str
    content: str
    subject: str | None = None
    to: Sequence[str] = ()
    cc: Sequence[str] = ()
    message_id: str | None = None
    in_reply_to: str | None = None
    mailbox_id: str | None = None
    auto_reply: bool = False
    actor: Actor | None = None
    attachment_ids: Sequence[str] = ()
    original_html: str | None = None

    @property
    def author(self) -> Actor:
        return self.actor or Actor("user", self.user_id)


@dataclass
class _Written:
    """A comment of `add_customer_messages`, with the change it made to its ticket."""

    item: IncomingMessage
    ticket: Ticket
    comment: Comment
    diff: dict[str, list[Any]]


async def _live_targets(
    session: AsyncSession, workspace_id: str, ticket_ids: Sequence[str]
) -> dict[str, Ticket]:
    """Each ticket, or the one it was merged into, by the id asked for; every row locked (in
    id order, one query per merge hop). An unknown ticket is 404."""
    wanted = list(dict.fromkeys(ticket_ids))
    held = await tickets.lock_tickets(session, workspace_id, wanted)
    if len(held) < len(wanted):
        raise not_found("Ticket")
    for _ in range(MAX_MERGE_HOPS):
        onward = {t.merged_into_ticket_id for t in held.values() if t.merged_into_ticket_id}
        missing = onward - held.keys()
        if not missing:
            break
        more = await tickets.lock_tickets(session, workspace_id, missing)
        if len(more) < len(missing):
            raise not_found("Ticket")
        held.update(more)
    targets = {}
    for ticket_id in wanted:
        ticket = held[ticket_id]
        for _ in range(MAX_MERGE_HOPS):
            if ticket.merged_into_ticket_id is None:
                break
            ticket = held[ticket.merged_into_ticket_id]
        targets[ticket_id] = ticket
    return targets


async def add_customer_message(
    session: AsyncSession, *, workspace_id: str, message: IncomingMessage
) -> CustomerMessage:
    """A message from a customer threaded onto a ticket: `add_customer_messages` with one."""
    return (await add_customer_messages(session, workspace_id=workspace_id, items=[message]))[0]


async def add_customer_messages(
    session: AsyncSession, *, workspace_id: str, items: Sequence[IncomingMessage]
) -> list[CustomerMessage]:
    """Messages from customers threaded onto tickets (called by email ingest), in order, in
    one transaction and a constant number of statements for all of them (besides files).

    A reply to a `With User` ticket, or to a `Closed` one within the reopen window
    (`REOPEN_WINDOW_DAYS`, from `closed_at`), reopens it to `Open`. After the window, or when the
    ticket is deleted, a new ticket (subject `subject`, in `mailbox_id`) linked to the old one
    is opened instead. A merged ticket's messages go to the ticket it was merged into.
    Auto-replies (`auto_reply`) are kept as a system comment that changes nothing else.
    Files (`attachment_ids`) go on the comment, or on the first message of the new ticket;
    `original_html` is what was received, when `content` was made from it. Each message has
    its own audit rows, `ticket.updated` and `comment.created`, as when it comes alone (the
    events' ticket summary is the ticket after all of them).
    """
    if not items:
        return []
    async with unit(session):
        targets = await _live_targets(session, workspace_id, [i.ticket_id for i in items])
        moment = now()
        window = runtime_of(session).settings.reopen_window_days * 86400
        opened: list[tuple[int, tickets.NewTicket]] = []
        written: dict[int, _Written] = {}
        for index, item in enumerate(items):
            ticket = targets[item.ticket_id]
            expired = ticket.status == "Closed" and (ticket.closed_at or 0) + window < moment
            if not item.auto_reply and (expired or ticket.deleted_at is not None):
                new = tickets.NewTicket(
                    actor=item.author,
                    subject=item.subject or ticket.subject,
                    body=item.content,
                    user_id=item.user_id,
                    mailbox_id=item.mailbox_id,
                    cc=item.cc,
                    linked_ticket_id=ticket.id,
                )
                opened.append((index, new))
                continue
            written[index] = await _customer_comment(session, workspace_id, ticket, item, moment)
        results: dict[int, CustomerMessage] = {}
        made = await create_tickets(
            session, workspace_id=workspace_id, items=[new for _, new in opened]
        )
        links = []
        for (index, _), ticket in zip(opened, made, strict=True):
            links.append(FileLink(ticket.id, None, list(items[index].attachment_ids)))
            results[index] = CustomerMessage(ticket, None, True)
        session.add_all(w.comment for w in written.values())
        await tickets.flush(session)
        for index, w in written.items():
            links.append(FileLink(w.ticket.id, w.comment.id, list(w.item.attachment_ids)))
            results[index] = CustomerMessage(w.ticket, w.comment, False)
        await _link_many(session, workspace_id, links)
        await _publish_comments(session, workspace_id, list(written.values()))
    return [results[index] for index in range(len(items))]


async def _customer_comment(
    session: AsyncSession, workspace_id: str, ticket: Ticket, item: IncomingMessage, moment: int
) -> _Written:
    """The comment of one message (not written yet) and its change of the ticket."""
    sanitized = sanitize_html(item.content)
    comment = Comment(
        workspace_id=workspace_id,
        ticket_id=ticket.id,
        kind="system" if item.auto_reply else "customer",
        author_type="user",
        author_id=item.user_id,
        content=sanitized,
        text=html_to_text(sanitized),
        original_html=item.content if item.original_html is None else item.original_html,
        to=addresses(item.to),
        cc=addresses(item.cc),
        message_id=item.message_id,
        in_reply_to=item.in_reply_to,
    )
    before = ticket.updated_at
    diff: dict[str, list[Any]] = {}
    if not item.auto_reply:
        changes: dict[str, Any] = {"is_read": False}
        if ticket.status in ("With User", "Closed"):
            changes["status"] = "Open"
        diff = await apply_changes(session, ticket, changes)
        carried = addresses([*(ticket.cc or []), *item.cc])
        if carried != (ticket.cc or []):
            diff["cc"] = [ticket.cc, carried]
            ticket.cc = carried
        diff["lastCustomerReplyAt"] = [ticket.last_customer_reply_at, moment]
        ticket.last_customer_reply_at = moment
    return _Written(item, ticket, comment, _touched(ticket, diff, before))


async def _publish_comments(
    session: AsyncSession, workspace_id: str, written: Sequence[_Written]
) -> None:
    """What `_publish_comment` does for one comment, for several: audit rows, one search
    rebuild, one summary read and one read of the new comments for the events."""
    if not written:
        return
    ticket_ids = list(dict.fromkeys(w.ticket.id for w in written))
    await tickets.search.reindex_tickets(session, workspace_id, ticket_ids)
    found = await summaries(session, workspace_id, ticket_ids)
    views = await comment_views(
        session,
        workspace_id,
        [w.comment.id for w in written],
        with_files=any(w.item.attachment_ids for w in written),
    )
    for w in written:
        actor = w.item.author
        tickets.record_changes(session, w.ticket, w.diff, actor)
        tickets.emit_updated(session, w.ticket, w.diff, found[w.ticket.id], actor)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="comment.created",
            subject_type="ticket",
            subject_id=w.ticket.id,
            after={"commentId": w.comment.id, "kind": w.comment.kind},
        )
        emit(
            session,
            Event(
                "comment.created",
                workspace_id,
                {"ticketId": w.ticket.id, "comment": dump(views[w.comment.id])},
                channels=channels(w.ticket.id),
                actor=actor.as_dict(),
            ),
        )


async def _own_note(
    session: AsyncSession, workspace_id: str, actor: Actor, comment_id: str
) -> Comment:
    comment = (
        await session.execute(
            select(Comment).where(
                Comment.workspace_id == workspace_id,
                Comment.id == comment_id,
                Comment.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if comment is None:
        raise not_found("Comment")
    if comment.kind != "note":
        raise forbidden("Replies and customer messages cannot be changed")
    if comment.author_type != actor.type or comment.author_id != actor.id:
        raise forbidden("Only the author can change a note")
    return comment


async def edit_note(
    session: AsyncSession, *, workspace_id: str, actor: Actor, comment_id: str, content: str
) -> Comment:
    sanitized, text = _body(content)
    async with unit(session):
        comment = await _own_note(session, workspace_id, actor, comment_id)
        before = comment.content
        comment.content, comment.text = sanitized, text
        comment.updated_at = max(now(), comment.updated_at)
        await session.flush()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="comment.updated",
            subject_type="ticket",
            subject_id=comment.ticket_id,
            before={"commentId": comment.id, "content": before},
            after={"commentId": comment.id, "content": sanitized},
        )
        await tickets.search.reindex_tickets(session, workspace_id, [comment.ticket_id])
        view = await comment_view(session, workspace_id, comment.id)
        emit(
            session,
            Event(
                "comment.updated",
                workspace_id,
                {"ticketId": comment.ticket_id, "comment": dump(view)},
                channels=channels(comment.ticket_id),
                actor=actor.as_dict(),
            ),
        )
    return comment


async def delete_note(
    session: AsyncSession, *, workspace_id: str, actor: Actor, comment_id: str
) -> None:
    """Soft delete of one's own note: gone from the thread and search, kept in the audit log."""
    async with unit(session):
        comment = await _own_note(session, workspace_id, actor, comment_id)
        comment.deleted_at = now()
        await session.flush()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="comment.deleted",
            subject_type="ticket",
            subject_id=comment.ticket_id,
            before={"commentId": comment.id, "content": comment.content},
        )
        await tickets.search.reindex_tickets(session, workspace_id, [comment.ticket_id])
        emit(
            session,
            Event(
                "comment.deleted",
                workspace_id,
                {"ticketId": comment.ticket_id, "commentId": comment.id},
                channels=channels(comment.ticket_id),
                actor=actor.as_dict(),
            ),
        )


async def record_delivery(
    session: AsyncSession,
    *,
    workspace_id: str,
    comment_id: str,
    delivery: str,
    error: str | None = None,
    message_id: str | None = None,
) -> Comment:
    """The outcome of one sending attempt of a reply (called by the email domain)."""
    if delivery not in ("pending", "sent", "failed"):
        raise ValueError(f"unknown delivery state {delivery}")
    async with unit(session):
        comment = (
            await session.execute(
                select(Comment).where(
                    Comment.workspace_id == workspace_id, Comment.id == comment_id
                )
            )
        ).scalar_one_or_none()
        if comment is None or comment.delivery is None:
            raise not_found("Comment")
        comment.delivery = delivery
        comment.delivery_error = error
        comment.delivery_attempts += 1
        if message_id:
            comment.message_id = message_id
        comment.updated_at = max(now(), comment.updated_at)
        record(
            session,
            workspace_id=workspace_id,
            actor=SYSTEM,
            verb="comment.delivery",
            subject_type="ticket",
            subject_id=comment.ticket_id,
            after={"commentId": comment.id, "delivery": delivery, "error": error},
        )
        emit(
            session,
            Event(
                "comment.delivery",
                workspace_id,
                {"ticketId": comment.ticket_id, "commentId": comment.id, "delivery": delivery},
                channels=channels(comment.ticket_id),
            ),
        )
    return comment


async def open_ticket(
    session: AsyncSession,
    *,
    workspace_id: str,
    ticket: tickets.NewTicket,
    notify_customer: bool = False,
) -> Ticket:
    """`create_ticket`; with `notify_customer` the body also goes to the customer as the first
    public reply (pending delivery, like any reply)."""
    async with unit(session):
        created = await create_ticket(session, workspace_id=workspace_id, ticket=ticket)
        if notify_customer:
            try:
                await add_reply(
                    session,
                    workspace_id=workspace_id,
                    actor=ticket.actor,
                    ticket_id=created.id,
                    content=ticket.body,
                )
            except ApiError as err:
                if err.code == "VALIDATION_ERROR":
                    raise validation_error("body", "an empty body cannot be sent") from err
                raise
    return created
