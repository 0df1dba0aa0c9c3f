"""Closing a ticket mails its survey (when the workspace has CSAT on)."""

from __future__ import annotations

from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.csat.service import send_survey


def setup(runtime: Runtime) -> None:
    async def reaction(event: Event) -> None:
        if event.type != "ticket.updated":
            return
        status = event.payload.get("changes", {}).get("status")
        if not status or status[-1] != "Closed":
            return
        async with runtime.db.transaction() as session:
            await send_survey(
                session, workspace_id=event.workspace_id, ticket_id=event.payload["id"]
            )

    runtime.reactions.append(reaction)
