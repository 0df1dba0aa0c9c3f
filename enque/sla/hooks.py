"""SLA state follows the tickets (a reaction); the due-check job raises breaches in time."""

from __future__ import annotations

from functools import partial

from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.sla.service import check_due, sync_ticket

CHECK_JOB = "sla.check_due"
CHECK_INTERVAL = 60


def ticket_of(event: Event) -> str | None:
    if event.type.startswith("ticket."):
        value = event.payload.get("id")
    elif event.type.startswith("comment."):
        value = event.payload.get("ticketId")
    else:
        return None
    return value if isinstance(value, str) else None


def setup(runtime: Runtime) -> None:
    async def reaction(event: Event) -> None:
        ticket_id = ticket_of(event)
        if ticket_id is None:
            return
        async with runtime.db.transaction() as session:
            await sync_ticket(
                session, workspace_id=event.workspace_id, ticket_id=ticket_id, at=event.ts
            )

    runtime.reactions.append(reaction)


async def on_startup(runtime: Runtime) -> None:
    scheduler = runtime.services.get("scheduler")
    if scheduler is not None:
        scheduler.register(CHECK_JOB, CHECK_INTERVAL, partial(check_due, runtime))
