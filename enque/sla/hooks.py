"""SLA state follows the tickets (a reaction); the due-check job raises breaches in time."""

from __future__ import annotations

from functools import partial

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.core.events import Event, caused_by
from enque.core.runtime import Runtime
from enque.core.tenantfacts import TenantFacts
from enque.sla.models import SlaPolicy, TicketSla
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


async def _in_use(session: AsyncSession, workspace_id: str) -> bool:
    policy = select(SlaPolicy.id).where(SlaPolicy.workspace_id == workspace_id).exists()
    state = select(TicketSla.ticket_id).where(TicketSla.workspace_id == workspace_id).exists()
    return bool((await session.execute(select(or_(policy, state)))).scalar())


# whether the workspace has a policy or any ticket an SLA state: kept until one is added
IN_USE = TenantFacts("sla", _in_use, {SlaPolicy: ("new", "dirty", "deleted"), TicketSla: ("new",)})


async def concerned(runtime: Runtime, workspace_id: str, ticket_id: str) -> bool:
    """Whether the workspace has a policy or the ticket an SLA state (none: no read at all)."""
    if not await IN_USE.get(runtime, workspace_id):
        return False
    async with runtime.db.session(write=False) as session:
        policy = select(SlaPolicy.id).where(SlaPolicy.workspace_id == workspace_id).exists()
        state = select(TicketSla.ticket_id).where(TicketSla.ticket_id == ticket_id).exists()
        return bool((await session.execute(select(or_(policy, state)))).scalar())


def setup(runtime: Runtime) -> None:
    async def reaction(event: Event) -> None:
        ticket_id = ticket_of(event)
        if ticket_id is None:
            return
        if not await concerned(runtime, event.workspace_id, ticket_id):
            return  # no policy and no state: no write transaction (SQLite has one writer)
        # `sla.*` raised here carry the cause's chain: a rule whose change led to a breach
        # is not run again by it (the automations' loop guard)
        with caused_by(event.depth, event.chain):
            async with runtime.db.transaction() as session:
                await sync_ticket(
                    session, workspace_id=event.workspace_id, ticket_id=ticket_id, at=event.ts
                )

    runtime.reactions.append(reaction)


async def on_startup(runtime: Runtime) -> None:
    scheduler = runtime.services.get("scheduler")
    if scheduler is not None:
        scheduler.register(CHECK_JOB, CHECK_INTERVAL, partial(check_due, runtime))
