"""Replies the old system was to send later (`scheduled_comments`) and its `schedule` rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from enque.attachments.models import Attachment
from enque.migrate.render import clean
from enque.migrate.spec import Env, Item, Row, TableSpec, table_of
from enque.migrate.transform import (
    json_value,
    parse_recipients,
    scheduled_status,
    to_bool,
    unix_time,
)
from enque.scheduled_replies.models import ScheduledReply
from enque.tickets.models import Ticket

# The old system's sender job was removed in a refactor: a reply still pending at its due
# time was never sent. Sending it at cut-over (months late) would surprise the customer; it
# is kept as failed with this reason, for the agent to send or drop.
OVERDUE = "due before the migration and never sent by the old system: schedule it again"


@dataclass
class ScheduledLookups:
    tickets: dict[str, Any]  # ticket id → its workspace
    attachments: set[str]  # the batch's attachment ids that exist in the target


async def _scheduled(rows: list[Row], env: Env) -> ScheduledLookups:
    tickets = await env.column(
        table_of(Ticket), (env.id("tickets", r["ticket_id"]) for r in rows), "workspace_id"
    )
    wanted: set[str] = set()
    for row in rows:
        value = row.get("attachment_ids")
        if not value:
            continue
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue  # reported by the transform
        for old in _attachment_ids(parsed):
            wanted.add(env.id("ticket_attachments", old))
    return ScheduledLookups(tickets, await env.existing(table_of(Attachment), wanted))


def _attachment_ids(value: Any) -> list[int]:
    """The integer ids of a legacy `attachment_ids` JSON list (anything else is dropped)."""
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]


def scheduled_row(item: Item) -> Row | None:
    """A scheduled comment → a scheduled reply of the same ticket and agent.

    A private one (an internal note to post later) has no equivalent: scheduled replies go
    to the customer, so it is left out and reported rather than ever sent.
    """
    row, ctx, env, ahead = item.row, item.ctx, item.env, item.ahead
    ticket = env.id("tickets", row["ticket_id"])
    if ahead.tickets.get(ticket) != item.workspace:
        ctx.issue("ticket_id", "orphan_skipped", f"ticket {row['ticket_id']} missing")
        return None
    agent = env.agent(row.get("agent_id"), ctx, "agent_id")
    if agent is None:
        ctx.issue("agent_id", "orphan_skipped", "a scheduled reply needs its agent: not migrated")
        return None
    if to_bool(row.get("is_private")):
        ctx.issue(
            "is_private",
            "no_equivalent",
            "a scheduled internal note: only public replies are scheduled now; not migrated",
        )
        return None
    files = []
    raw = json_value(row.get("attachment_ids"), ctx, "attachment_ids")
    for old in _attachment_ids(raw):
        new = env.id("ticket_attachments", old)
        if new in ahead.attachments:
            files.append(new)
        else:
            ctx.issue("attachment_ids", "orphan_reference", f"attachment {old} missing: dropped")
    send_at = unix_time(row.get("scheduled_send_at"), ctx, "scheduled_send_at")
    if send_at is None:
        send_at = item.created
    status = scheduled_status(row.get("status"), ctx)
    error = row.get("error_message")
    if status == "pending" and send_at < env.fallback_time:
        ctx.issue("scheduled_send_at", "overdue_scheduled_reply", OVERDUE)
        status, error = "failed", OVERDUE
    cc = row.get("other_destinaries")
    return {
        "ticket_id": ticket,
        "agent_id": agent,
        "content": clean(row.get("content") or "")[0],
        "to": [],  # the ticket's customer, as for every reply
        "cc": None if cc is None else _emails(cc, item, "other_destinaries"),
        "bcc": _emails(row.get("bcc_recipients"), item, "bcc_recipients"),
        "attachment_ids": list(dict.fromkeys(files)),
        "ticket_status": None,
        "send_at": send_at,
        "status": status,
        "next_attempt_at": send_at,
        "attempts": int(row.get("retry_count") or 0),
        "last_error": error,
        "claim_token": None,
        "claimed_until": None,
        "sent_comment_id": None,
        "sent_at": unix_time(row.get("sent_at"), ctx, "sent_at"),
        "cancelled_at": item.updated if status == "cancelled" else None,
    }


def _emails(value: str | None, item: Item, column: str) -> list[str]:
    return [a.email for a in parse_recipients(value, item.ctx, column)]


def schedule_row(item: Item) -> None:
    """A `schedule` row is a name and a date, tied to no ticket and no message: nothing runs
    at that time in the old system nor has anything to run in the new one."""
    item.ctx.issue(
        None,
        "no_equivalent",
        f"schedule {item.row.get('name')!r} not kept: it names a date and nothing to do then",
        level="info",
    )


SPECS: tuple[TableSpec, ...] = (
    TableSpec("scheduled_comments", ScheduledReply, scheduled_row, prepare=_scheduled),
    TableSpec("schedule", None, schedule_row),
)
