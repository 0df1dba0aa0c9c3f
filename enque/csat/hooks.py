"""Closing a ticket mails its survey (when the workspace has CSAT on)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.core.tenantfacts import TenantFacts
from enque.csat.models import CsatSettings
from enque.csat.service import get_settings, send_survey


async def _enabled(session: AsyncSession, workspace_id: str) -> bool:
    return await get_settings(session, workspace_id=workspace_id)


# whether the workspace sends surveys: read once until its settings change
ENABLED = TenantFacts("csat", _enabled, {CsatSettings: ("new", "dirty", "deleted")})


def setup(runtime: Runtime) -> None:
    async def reaction(event: Event) -> None:
        if event.type != "ticket.updated":
            return
        status = event.payload.get("changes", {}).get("status")
        if not status or status[-1] != "Closed":
            return
        if not await ENABLED.get(runtime, event.workspace_id):
            return  # surveys off: no write transaction
        async with runtime.db.transaction() as session:
            await send_survey(
                session, workspace_id=event.workspace_id, ticket_id=event.payload["id"]
            )

    runtime.reactions.append(reaction)
