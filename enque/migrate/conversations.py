"""Tickets and their threads: tickets with their bodies, comments, files, the mail ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from enque.categories.models import Category
from enque.comments.models import Comment
from enque.customers.models import User
from enque.mailboxes.models import EmailMessage, Mailbox
from enque.migrate.idmap import IdSpace
from enque.migrate.people import companies_of
from enque.migrate.render import Message, clean, render
from enque.migrate.source import LegacySource
from enque.migrate.spec import (
    Env,
    FileJob,
    Folded,
    Item,
    Row,
    TableSpec,
    insert,
    table_of,
)
from enque.migrate.transform import (
    attachment_source,
    comment_kind,
    comment_source,
    parse_recipients,
    storage_key,
    ticket_priority,
    ticket_status,
    to_bool,
    unix_time,
)
from enque.teams.models import Team
from enque.tickets.models import PRIORITY_WEIGHT, Ticket, TicketBody, TicketCounter

UNKNOWN_CUSTOMER = "unknown-customer@legacy.invalid"


def addresses(value: str | None, item: Item, column: str) -> list[dict[str, str | None]]:
    """The address list of a recipient column. The same few strings recur on most rows
    (the mailbox, the customer): those that parse without a finding are kept for later rows
    (bounded), their list shared (rows are written, never changed)."""
    if not value:
        return []
    memo = item.env.memo("recipients")
    found = memo.get(value)
    if found is None:
        before = item.ctx.report.count()
        found = [a.to_dict() for a in parse_recipients(value, item.ctx, column)]
        if item.ctx.report.count() == before:
            memo[value] = found
    return found


def customer_row(
    env: Env, workspace_old: Any, workspace: str, email: str, name: str | None, at: int
) -> Row:
    """A customer the migration creates (named by a marker, or standing in for a lost one)."""
    return {
        "id": env.id("users:original_sender", f"{workspace_old}:{email.lower()}"),
        "workspace_id": workspace,
        "name": name or email.split("@", 1)[0],
        "email": email,
        "phone": None,
        "avatar_url": None,
        "company_id": None,
        "notes": None,
        "is_blocked": False,
        "deleted_at": None,
        "created_at": at,
        "updated_at": at,
    }


# ---------------------------------------------------------------- tickets


@dataclass
class TicketLookups:
    teams: set[str]
    categories: set[str]
    companies: set[str]
    mailboxes: dict[str, Any]  # mailbox id → workspace id
    users: set[str]
    merged: set[str]
    bodies: dict[int, tuple[str, str, str]]  # legacy ticket → (original, sanitized, text)
    unknown: set[str] = field(default_factory=set)


async def _tickets(rows: list[Row], env: Env) -> TicketLookups:
    legacy_bodies = await ticket_bodies(env, [int(r["id"]) for r in rows])
    bodies = {}
    for row in rows:
        body = legacy_bodies.get(int(row["id"]))
        html = body if body is not None else (row.get("description") or "")
        bodies[int(row["id"])] = (html, *clean(html))
    mailboxes = env.cache.get("mailboxes")
    if mailboxes is None:
        mailbox = table_of(Mailbox)
        found = await env.conn.execute(select(mailbox.c.id, mailbox.c.workspace_id))
        mailboxes = env.cache["mailboxes"] = dict(found.tuples().all())
    return TicketLookups(
        teams=await env.small(table_of(Team)),
        categories=await env.small(table_of(Category)),
        companies=await companies_of(rows, env),
        mailboxes=mailboxes,
        users=await env.existing(table_of(User), (env.id("users", r["user_id"]) for r in rows)),
        merged=await env.existing(
            table_of(Ticket),
            (env.maybe("tickets", r.get("merged_to_ticket_id")) for r in rows),
        ),
        bodies=bodies,
    )


async def ticket_bodies(env: Env, tickets: list[int]) -> dict[int, str]:
    """Legacy ticket id → its `ticket_bodies.email_body` (the latest row when several)."""
    found: dict[int, str] = {}
    for row in await env.source_rows("ticket_bodies", "ticket_id", tickets):
        if row["email_body"] is not None:
            found[int(row["ticket_id"])] = str(row["email_body"])
    return found


def ticket_row(item: Item) -> Row:
    row, ctx, env, ahead = item.row, item.ctx, item.env, item.ahead
    user = env.id("users", row["user_id"])
    if user not in ahead.users:
        ctx.issue(
            "user_id",
            "orphan_reference",
            f"customer {row['user_id']} missing: ticket given to {UNKNOWN_CUSTOMER}",
        )
        customer = customer_row(
            env,
            row["workspace_id"],
            item.workspace,
            UNKNOWN_CUSTOMER,
            "Unknown customer",
            env.fallback_time,
        )
        user = customer["id"]
        if user not in ahead.unknown:
            ahead.unknown.add(user)
            item.out.add(table_of(User), customer)

    def ref(column: str, table: str, known: Any) -> str | None:
        new = env.maybe(table, row.get(column))
        if new is not None and new not in known:
            ctx.issue(column, "orphan_reference", f"{table} {row.get(column)} missing: NULL")
            return None
        return new

    mailbox = ref("mailbox_connection_id", "mailbox_connections", ahead.mailboxes)
    if mailbox is not None and ahead.mailboxes[mailbox] != item.workspace:
        ctx.issue("mailbox_connection_id", "orphan_reference", "mailbox of another workspace")
        mailbox = None
    priority = ticket_priority(row.get("priority"), ctx)
    deleted_at = unix_time(row.get("deleted_at"), ctx, "deleted_at")
    status = ticket_status(row.get("status"), ctx)
    new = env.id("tickets", row["id"])
    into = env.maybe("tickets", row.get("merged_to_ticket_id"))
    original, sanitized, text = ahead.bodies[int(row["id"])]
    item.out.add(
        table_of(TicketBody),
        {
            "id": env.id("ticket_bodies", f"ticket:{row['id']}"),
            "workspace_id": item.workspace,
            "ticket_id": new,
            "original_html": original,
            "sanitized_html": sanitized,
            "plain_text": text,
            "created_at": item.created,
            "updated_at": item.created,
        },
    )
    return {
        "id": new,
        "number": int(row["id"]),
        "subject": (row.get("title") or "").strip() or "(no subject)",
        "status": status,
        "priority": priority,
        "priority_weight": PRIORITY_WEIGHT[priority],
        "user_id": user,
        "company_id": ref("company_id", "companies", ahead.companies),
        "assignee_id": env.agent(row.get("assignee_id"), ctx, "assignee_id"),
        "team_id": ref("team_id", "teams", ahead.teams),
        "category_id": ref("category_id", "categories", ahead.categories),
        "mailbox_id": mailbox,
        "tags": [],
        "cc": addresses(row.get("cc_recipients"), item, "cc_recipients"),
        "due_at": unix_time(row.get("due_date"), ctx, "due_date"),
        "is_read": bool(to_bool(row.get("is_read"))),
        "first_response_at": None,
        "resolved_at": None,
        "closed_at": item.updated if status == "Closed" else None,
        "last_customer_reply_at": None,
        "last_agent_reply_at": None,
        # a later ticket is set once every ticket exists (fix_merges)
        "merged_into_ticket_id": into if into in ahead.merged else None,
        "merged_at": unix_time(row.get("merged_at"), ctx, "merged_at"),
        "linked_ticket_id": None,
        "deleted_at": (deleted_at or item.updated) if to_bool(row.get("is_deleted")) else None,
        "version": 1,
        "conversation_id": row.get("email_conversation_id"),
        "root_message_id": row.get("email_internet_message_id"),
    }


async def fix_merges(conn: AsyncConnection, source: LegacySource, space: IdSpace) -> None:
    """`tickets.merged_to_ticket_id` (a ticket may point at a later one): set once all exist."""
    pairs = await source.fetch(
        "SELECT id, merged_to_ticket_id FROM tickets WHERE merged_to_ticket_id IS NOT NULL"
    )
    tickets = table_of(Ticket)
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        targets = {space.new_id("tickets", m) for _, m in chunk}
        rows = await conn.execute(select(tickets.c.id).where(tickets.c.id.in_(targets)))
        existing = {r[0] for r in rows}
        for old, merged in chunk:
            into = space.new_id("tickets", merged)
            if into in existing:
                await conn.execute(
                    tickets.update()
                    .where(tickets.c.id == space.new_id("tickets", old))
                    .values(merged_into_ticket_id=into, updated_at=tickets.c.updated_at)
                )


async def set_counters(conn: AsyncConnection) -> None:
    """Each workspace's ticket counter past its highest number (old ids became numbers)."""
    tickets, counters = table_of(Ticket), table_of(TicketCounter)
    rows = await conn.execute(
        select(tickets.c.workspace_id, func.max(tickets.c.number)).group_by(tickets.c.workspace_id)
    )
    for workspace, highest in rows.all():
        stmt = insert(conn, counters).values(workspace_id=workspace, last_number=highest)
        larger = (
            func.max(counters.c.last_number, stmt.excluded.last_number)
            if conn.dialect.name == "sqlite"
            else func.greatest(counters.c.last_number, stmt.excluded.last_number)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["workspace_id"], set_={"last_number": larger}
        )
        await conn.execute(stmt)


async def finish_tickets(conn: AsyncConnection, source: LegacySource, space: IdSpace) -> None:
    await fix_merges(conn, source, space)
    await set_counters(conn)


async def _bodies(rows: list[Row], env: Env) -> dict[str, Any]:
    tickets = (env.id("tickets", r["ticket_id"]) for r in rows)
    return await env.column(table_of(Ticket), tickets, "workspace_id")


def ticket_body_row(item: Item) -> Folded | None:
    """The bodies are written with their tickets (one `ticket_body` per ticket): here each
    legacy row is accounted for, and those of missing tickets reported."""
    ticket = item.env.id("tickets", item.row["ticket_id"])
    if ticket not in item.ahead:
        item.ctx.issue("ticket_id", "orphan_skipped", f"ticket {item.row['ticket_id']} missing")
        return None
    return Folded(ticket)


# ---------------------------------------------------------------- comments


@dataclass
class CommentLookups:
    tickets: dict[Any, str]  # legacy ticket id → ticket id
    ticket_user: dict[str, Any]  # ticket id → its customer
    users: set[str]
    known: dict[tuple[str, str], str]  # (workspace, lowercased email) → customer
    messages: dict[Any, Message]  # legacy comment id → its content (placeholders have none)


async def _comments(rows: list[Row], env: Env) -> CommentLookups:
    """The batch's lookups (tickets and customers kept across batches: the comments load
    writes no ticket, and the customers it makes are added to what it knows) and each
    comment's content, read and rendered."""
    tickets = {r["ticket_id"]: env.id("tickets", r["ticket_id"]) for r in rows}
    ticket_user = await env.column(table_of(Ticket), tickets.values(), "user_id", keep=True)
    authors = {env.id("users", r["user_id"]) for r in rows if r.get("user_id") is not None}
    users = set(await env.column(table_of(User), authors, "id", keep=True))
    sources = {}
    for row in rows:
        if tickets[row["ticket_id"]] in ticket_user:  # orphans are not read
            ctx = env.ctx("comments", row["id"])
            source = comment_source(row.get("content"), row.get("s3_html_url"), ctx)
            sources[row["id"]] = source, ctx
    wanted = {s.s3_key for s, _ in sources.values() if s.s3_key}
    bodies = await env.fetch_all(wanted) if wanted else {}
    messages: dict[Any, Message] = {}
    pairs: set[tuple[str, str]] = set()
    for row in rows:
        found = sources.get(row["id"])
        if found is None or found[0].kind == "placeholder":
            continue
        source, ctx = found
        html = source.html or ""
        if source.kind == "s3":
            data = bodies.get(source.s3_key or "")
            if data is None:
                ctx.issue(
                    "s3_html_url",
                    "missing_object",
                    f"{source.s3_key} not in the legacy store: empty content",
                )
            html = data.decode("utf-8", "replace") if data else ""
        message = messages[row["id"]] = render(html, ctx)
        sender = message.sender
        if sender is not None and sender.email:
            pairs.add((env.id("workspaces", row["workspace_id"]), sender.email.lower()))
    known = env.memo("customers_by_email")
    missing = pairs - known.keys()
    if missing:
        known.update(await env.users_by_email(missing))
    return CommentLookups(tickets, ticket_user, users, known, messages)


def comment_row(item: Item) -> Row | None:
    row, ctx, env, ahead = item.row, item.ctx, item.env, item.ahead
    ticket = ahead.tickets[row["ticket_id"]]
    if ticket not in ahead.ticket_user:
        ctx.issue(
            "ticket_id",
            "orphan_skipped",
            f"ticket {row['ticket_id']} missing: comment not migrated",
        )
        return None
    message = ahead.messages.get(row["id"])
    if message is None:
        ctx.issue(
            None, "placeholder_skipped", "attachment placeholder: not a message", level="info"
        )
        return None
    new = env.id("comments", row["id"])
    author_type, author = "system", None
    sender = message.sender
    agent_id, user_id = row.get("agent_id"), row.get("user_id")
    if sender is not None:
        author_type = "user"
        if sender.email is None:
            author = ahead.ticket_user[ticket]
        else:
            key = (item.workspace, sender.email.lower())
            author = ahead.known.get(key)
            if author is None:
                made = customer_row(
                    env,
                    row["workspace_id"],
                    item.workspace,
                    sender.email,
                    sender.name,
                    item.created,
                )
                # known from now on (later batches too: this batch writes it first)
                author = ahead.known[key] = made["id"]
                item.out.add(table_of(User), made)
                item.out.idmap.append(
                    ("users:original_sender", f"{row['workspace_id']}:{key[1]}", author)
                )
    elif agent_id is not None and int(agent_id) in env.agents:
        author_type, author = "agent", env.agents[int(agent_id)]
    elif user_id is not None and env.id("users", user_id) in ahead.users:
        author_type, author = "user", env.id("users", user_id)
    elif agent_id is not None or user_id is not None:
        ctx.issue("agent_id", "orphan_reference", "author missing: system comment")
    for image in message.images:
        image_key = f"{row['id']}:{image.content_id}"
        image_row = file_row(
            env.id("comments:inline_image", image_key),
            workspace=item.workspace,
            comment=new,
            source_table="comments:inline_image",
            source_key=image_key,
            name=image.filename,
            content_type=image.content_type,
            at=item.created,
            inline=True,
            content_id=image.content_id,
        )
        item.out.files.append(FileJob(image_row, data=image.data, s3_key=image.s3_key))
    return {
        "id": new,
        "ticket_id": ticket,
        "kind": comment_kind(row.get("is_private"), customer_message=sender is not None, ctx=ctx),
        "author_type": author_type,
        "author_id": author,
        "content": message.content,
        "text": message.text,
        "original_html": message.original or None,
        "to": addresses(row.get("to_recipients"), item, "to_recipients"),
        "cc": addresses(row.get("other_destinaries"), item, "other_destinaries"),
        "bcc": addresses(row.get("bcc_recipients"), item, "bcc_recipients"),
        "mentions": [],
        "message_id": None,
        "in_reply_to": None,
        "delivery": None,
        "delivery_error": None,
        "delivery_attempts": 0,
        "deleted_at": None,
    }


# ---------------------------------------------------------------- files


def file_row(
    new: str,
    *,
    workspace: str,
    comment: str | None,
    source_table: str,
    source_key: str,
    name: str,
    content_type: str,
    at: int,
    inline: bool = False,
    content_id: str | None = None,
) -> Row:
    """A `legacy_files` row; size and sha256 are filled in once the bytes are copied."""
    return {
        "id": new,
        "migration_id": "",  # filled by the writer
        "workspace_id": workspace,
        "comment_id": comment,
        "source_table": source_table,
        "source_key": source_key,
        "file_name": name[:255],
        "content_type": content_type[:255],
        "size": 0,
        "sha256": "",
        "storage_key": storage_key(workspace, at, new),
        "is_inline": inline,
        "content_id": content_id,
        "created_at": at,
        "updated_at": at,
    }


async def _attachments(rows: list[Row], env: Env) -> dict[str, Any]:
    comments = (env.id("comments", r["comment_id"]) for r in rows)
    return await env.column(table_of(Comment), comments, "workspace_id")


def attachment_row(item: Item) -> Folded | None:
    """Each attachment becomes a file job; the writer records it once its bytes are copied."""
    row, ctx, env = item.row, item.ctx, item.env
    comment = env.id("comments", row["comment_id"])
    if comment not in item.ahead:
        ctx.issue(
            "comment_id",
            "orphan_skipped",
            f"comment {row['comment_id']} not migrated (placeholder or missing)",
        )
        return None
    where = attachment_source(row, ctx)
    if where is None:
        return None
    new = env.id("ticket_attachments", row["id"])
    job = file_row(
        new,
        workspace=item.ahead[comment],
        comment=comment,
        source_table="ticket_attachments",
        source_key=str(row["id"]),
        name=row.get("file_name") or f"attachment-{row['id']}",
        content_type=row.get("content_type") or "application/octet-stream",
        at=item.created,
    )
    item.out.files.append(FileJob(job, data=where.data, s3_key=where.s3_key))
    return Folded(new)


# ---------------------------------------------------------------- the mail ledger


async def _ledger(rows: list[Row], env: Env) -> dict[str, tuple[str, str | None]]:
    """Each ticket's (workspace, mailbox)."""
    tickets = table_of(Ticket)
    wanted = sorted({env.id("tickets", r["ticket_id"]) for r in rows})
    found: dict[str, tuple[str, str | None]] = {}
    for start in range(0, len(wanted), 500):
        result = await env.conn.execute(
            select(tickets.c.id, tickets.c.workspace_id, tickets.c.mailbox_id).where(
                tickets.c.id.in_(wanted[start : start + 500])
            )
        )
        found.update({i: (w, m) for i, w, m in result.tuples()})
    return found


def ledger_row(item: Item) -> Row | None:
    """An `email_ticket_mapping` row → the ledger of its ticket's mailbox, so that mailbox
    does not ingest the message again (the Graph id is the provider id; the old system kept
    each id once, as the new one keeps it once per mailbox)."""
    row, ctx, env = item.row, item.ctx, item.env
    ticket = env.id("tickets", row["ticket_id"])
    if ticket not in item.ahead:
        ctx.issue("ticket_id", "orphan_skipped", f"ticket {row['ticket_id']} missing")
        return None
    workspace, mailbox = item.ahead[ticket]
    return {
        "workspace_id": workspace,
        "mailbox_id": mailbox,
        "direction": "in",
        "provider_id": row["email_id"],
        "internet_message_id": None,
        "in_reply_to": None,
        "references": [],
        "conversation_id": row.get("email_conversation_id"),
        "ticket_id": ticket,
        "comment_id": None,
        "raw_size": 0,
        "received_at": unix_time(row.get("email_received_at"), ctx, "email_received_at"),
        "state": "processed" if to_bool(row.get("is_processed")) else "ignored",
        "classification": None,
        "error": None,
    }


SPECS: tuple[TableSpec, ...] = (
    TableSpec("tickets", Ticket, ticket_row, prepare=_tickets, finish=finish_tickets, overlap=True),
    TableSpec("ticket_bodies", None, ticket_body_row, prepare=_bodies, tenant=False, overlap=True),
    TableSpec("comments", Comment, comment_row, prepare=_comments, overlap=True),
    TableSpec(
        "ticket_attachments",
        None,
        attachment_row,
        prepare=_attachments,
        tenant=False,
        overlap=True,
    ),
    TableSpec("email_ticket_mapping", EmailMessage, ledger_row, prepare=_ledger, tenant=False),
)
