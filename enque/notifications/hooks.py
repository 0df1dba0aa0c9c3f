"""Wire notifications into the process: the event reaction, the automation seam and the
digest job."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.notifications import digest, reactions
from enque.notifications.service import notify


async def notify_agents(
    session: AsyncSession,
    *,
    workspace_id: str,
    agent_ids: Sequence[str],
    ticket_id: str,
    reason: str,
) -> None:
    """`runtime.services["notify_agents"]`: an automation rule's notify action, in its
    transaction (`reason` is `automation:<rule id>`)."""
    ticket = await reactions.load_ticket(session, workspace_id, ticket_id)
    if ticket is None:
        return
    kind, _, rule_id = reason.partition(":")
    actor = {"type": kind, "id": rule_id or None, "name": "Automation"}
    await notify(
        session,
        workspace_id=workspace_id,
        event="automation",
        agent_ids=agent_ids,
        ticket_id=ticket.id,
        payload=reactions.payload_of(ticket, actor),
    )


def setup(runtime: Runtime) -> None:
    runtime.services["notify_agents"] = notify_agents

    async def reaction(event: Event) -> None:
        await reactions.react(runtime, event)

    runtime.reactions.append(reaction)


async def on_startup(runtime: Runtime) -> None:
    scheduler = runtime.services.get("scheduler")
    if scheduler is not None:
        scheduler.register(digest.JOB, digest.INTERVAL, partial(digest.send_digests, runtime))
