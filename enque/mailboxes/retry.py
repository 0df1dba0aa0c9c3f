"""Failed messages (dead letters) processed again from their raw copy: `enque email retry`.

A message whose processing raised is a `failed` ledger row with the error, its raw copy in
storage (`ingest.dead_letter_key`). Once the cause is fixed, a retry runs it through the same
ingest, which replaces the failed row in the transaction that writes the ticket or comment
(or keeps the row with the new error); the raw copy goes once it succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from enque.core.runtime import Runtime
from enque.core.storage import StorageNotFound, storage_of
from enque.email.parse import parse_message
from enque.mailboxes.ingest import Context, Inbound, context_for, dead_letter_key, ingest
from enque.mailboxes.models import EmailMessage, Mailbox


@dataclass(frozen=True)
class Retried:
    ledger_id: str
    mailbox_id: str | None
    # what ingest answered (created, commented, ignored, duplicate, failed), or skipped
    outcome: str
    reason: str | None = None


async def _failed(
    runtime: Runtime, workspace_id: str | None, mailbox_id: str | None
) -> list[tuple[EmailMessage, Mailbox | None]]:
    stmt = (
        select(EmailMessage, Mailbox)
        .outerjoin(Mailbox, Mailbox.id == EmailMessage.mailbox_id)
        .where(EmailMessage.direction == "in", EmailMessage.state == "failed")
        .order_by(EmailMessage.created_at, EmailMessage.id)
    )
    if workspace_id is not None:
        stmt = stmt.where(EmailMessage.workspace_id == workspace_id)
    if mailbox_id is not None:
        stmt = stmt.where(EmailMessage.mailbox_id == mailbox_id)
    async with runtime.db.session(write=False) as session:
        return [(row, mailbox) for row, mailbox in (await session.execute(stmt)).tuples()]


async def retry_failed(
    runtime: Runtime, *, workspace_id: str | None = None, mailbox_id: str | None = None
) -> list[Retried]:
    """Every failed received message (of a workspace or a mailbox), oldest first."""
    storage = storage_of(runtime)
    contexts: dict[str, Context] = {}
    done = []
    for row, mailbox in await _failed(runtime, workspace_id, mailbox_id):
        if mailbox is None or mailbox.deleted_at is not None:
            done.append(Retried(row.id, row.mailbox_id, "skipped", "the mailbox is disconnected"))
            continue
        try:
            raw = await storage.read(dead_letter_key(row.workspace_id, row.id))
        except StorageNotFound:
            done.append(Retried(row.id, mailbox.id, "skipped", "no raw copy was kept"))
            continue
        if mailbox.id not in contexts:
            contexts[mailbox.id] = await context_for(runtime, mailbox)
        inbound = Inbound(parse_message(raw), row.provider_id, row.conversation_id)
        result = await ingest(
            runtime, mailbox, inbound, raw=raw, context=contexts[mailbox.id], replacing=row
        )
        done.append(Retried(row.id, mailbox.id, result.outcome, result.reason))
    return done
