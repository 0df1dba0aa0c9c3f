"""The trash: tickets deleted (soft) longer than `TRASH_RETENTION_DAYS` ago are deleted for good
by a scheduled job, with their files. Until then they can be restored."""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import delete, select

from enque.core.db import now
from enque.core.runtime import Runtime
from enque.tickets import seams
from enque.tickets.models import Ticket

log = logging.getLogger(__name__)

JOB = "tickets.purge_trash"
INTERVAL = 3600
BATCH = 200
DAY = 86_400


async def purge_trash(runtime: Runtime, *, at: int | None = None) -> int:
    """Delete for good the tickets that stayed in the trash past the retention; returns how
    many went. Their comments, bodies, tags and search documents go with them (foreign keys),
    their files through the attachments seam in the same transaction."""
    cutoff = (at or now()) - runtime.settings.trash_retention_days * DAY
    purged = 0
    while True:
        async with runtime.db.transaction() as session:
            rows = (
                await session.execute(
                    select(Ticket.id, Ticket.workspace_id)
                    .where(Ticket.deleted_at.is_not(None), Ticket.deleted_at < cutoff)
                    .order_by(Ticket.deleted_at, Ticket.id)
                    .limit(BATCH)
                )
            ).all()
            if not rows:
                return purged
            by_workspace: dict[str, list[str]] = defaultdict(list)
            for ticket_id, workspace_id in rows:
                by_workspace[workspace_id].append(ticket_id)
            files = seams.attachments(session)
            for workspace_id, ids in by_workspace.items():
                if files is not None and hasattr(files, "purge"):
                    await files.purge(session, workspace_id=workspace_id, ticket_ids=ids)
                # a merged ticket that pointed at one of these keeps its history (SET NULL)
                await session.execute(
                    delete(Ticket).where(Ticket.workspace_id == workspace_id, Ticket.id.in_(ids))
                )
                log.info("purged %d tickets from the trash of workspace %s", len(ids), workspace_id)
        purged += len(rows)
