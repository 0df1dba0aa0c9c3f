"""The email domain in the process: the mailbox directory for tickets, the sender of replies,
and the periodic sync of every mailbox (`email.sync`, every `EMAIL_SYNC_INTERVAL` seconds)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.comments.models import Comment
from enque.core.metrics import QUEUE_DEPTH
from enque.core.runtime import Runtime
from enque.core.tenantfacts import TenantFacts
from enque.mailboxes import outbound
from enque.mailboxes.models import Mailbox
from enque.mailboxes.sync import sync_all, sync_mailbox

SYNC_JOB = "email.sync"
RESEND_JOB = "email.resend"
RESEND_INTERVAL = 60


async def _live_ids(session: AsyncSession, workspace_id: str) -> frozenset[str]:
    rows = await session.execute(
        select(Mailbox.id).where(Mailbox.workspace_id == workspace_id, Mailbox.deleted_at.is_(None))
    )
    return frozenset(rows.scalars())


# the workspace's live mailboxes: read once until one is added, changed or removed
LIVE = TenantFacts("mailboxes", _live_ids, {Mailbox: ("new", "dirty", "deleted")})


class MailboxDirectory:
    """`runtime.services["mailboxes"]` (tickets/seams.py): which mailbox a ticket may name."""

    async def exists(self, session: AsyncSession, *, workspace_id: str, mailbox_id: str) -> bool:
        return mailbox_id in await LIVE.within(session, workspace_id)


def setup(runtime: Runtime) -> None:
    runtime.services["mailboxes"] = MailboxDirectory()
    runtime.services["email_sync"] = partial(sync_mailbox, runtime)
    runtime.services["email_sync_all"] = partial(sync_all, runtime)
    outbox = outbound.Outbox(runtime)
    runtime.services["email_outbox"] = outbox
    runtime.services["workspace_mail"] = partial(outbound.send_notice, runtime)
    runtime.reactions.append(outbox.react)
    runtime.services.setdefault("metric_probes", []).append(count_unsent)


async def count_unsent(runtime: Runtime) -> None:
    """Queue depth for `/metrics`: public replies not yet handed to a mail server."""
    async with runtime.db.session(write=False) as session:
        pending = await session.scalar(
            select(func.count()).select_from(Comment).where(Comment.delivery == "pending")
        )
    QUEUE_DEPTH.labels("outbound_email").set(pending or 0)


async def on_startup(runtime: Runtime) -> None:
    """Every set-up hook has run: the scheduler, when the process has one, is registered."""
    scheduler = runtime.services.get("scheduler")
    if scheduler is not None:
        scheduler.register(
            SYNC_JOB, runtime.settings.email_sync_interval, partial(sync_all, runtime)
        )
        outbox: outbound.Outbox = runtime.services["email_outbox"]
        scheduler.register(RESEND_JOB, RESEND_INTERVAL, outbox.resend_pending)


async def on_shutdown(runtime: Runtime) -> None:
    outbox: outbound.Outbox | None = runtime.services.get("email_outbox")
    if outbox is not None:
        await outbox.drain(timeout=10)
