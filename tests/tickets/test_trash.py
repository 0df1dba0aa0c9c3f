"""The trash: deleted tickets are restorable until the retention ends, then purged with their
thread and files by a scheduled job."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update

from enque.attachments.models import Attachment
from enque.comments.models import Comment
from enque.core.db import now
from enque.core.runtime import Runtime
from enque.tickets.models import Ticket
from enque.tickets.trash import DAY, purge_trash
from tests.support.api import Tenant, data
from tests.support.helpdesk import new_ticket


async def _ticket_with_a_file(tenant: Tenant) -> tuple[str, dict]:
    ticket = await new_ticket(tenant)
    upload = await tenant.post(
        "/v1/attachments", files={"file": ("notes.txt", b"kept until purged", "text/plain")}
    )
    file = data(upload, 201)
    reply = {"content": "<p>see file</p>", "attachmentIds": [file["id"]]}
    data(await tenant.post(f"/v1/tickets/{ticket['id']}/notes", json=reply), 201)
    return ticket["id"], file


async def test_old_trash_is_purged_with_thread_and_files(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    old, old_file = await _ticket_with_a_file(tenant)
    recent, _ = await _ticket_with_a_file(tenant)
    kept = await new_ticket(tenant)
    for ticket_id in (old, recent):
        assert (await tenant.delete(f"/v1/tickets/{ticket_id}")).status_code == 204
    retention = app_runtime.settings.trash_retention_days * DAY
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(Ticket).where(Ticket.id == old).values(deleted_at=now() - retention - 60)
        )
        key = await session.scalar(
            select(Attachment.storage_key).where(Attachment.id == old_file["id"])
        )
    storage = app_runtime.services["storage"]
    assert await storage.exists(key)

    assert await purge_trash(app_runtime) >= 1
    async with app_runtime.db.session() as session:
        ids = set(
            (
                await session.scalars(
                    select(Ticket.id).where(Ticket.id.in_([old, recent, kept["id"]]))
                )
            ).all()
        )
        assert ids == {recent, kept["id"]}
        assert await session.scalar(select(func.count()).where(Comment.ticket_id == old)) == 0
        assert (
            await session.scalar(select(func.count()).where(Attachment.id == old_file["id"])) == 0
        )
    for _ in range(50):  # objects go after commit
        if not await storage.exists(key):
            break
        await asyncio.sleep(0.1)
    assert not await storage.exists(key)
    # the recent one is still in the trash and can be restored
    assert (await tenant.post(f"/v1/tickets/{recent}/restore")).status_code == 200
    assert await purge_trash(app_runtime) == 0
