"""Keeps ticket search documents in step with customer names and emails; empties the trash."""

from __future__ import annotations

from functools import partial

from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.tickets import automation, trash
from enque.tickets.service import reindex_customer_tickets, ticket_exists

SEARCHED_CUSTOMER_FIELDS = frozenset({"name", "email"})


def setup(runtime: Runtime) -> None:
    runtime.services["ticket_facts"] = automation.load_ticket_facts
    runtime.services["ticket_exists"] = ticket_exists
    runtime.services["automation_executor"] = automation.TicketActions()
    runtime.services.setdefault("lookups", {}).update(
        {
            "category": automation.category_ids,
            "company": automation.company_ids,
            "mailbox": automation.mailbox_ids,
        }
    )

    async def reindex_on_customer_change(event: Event) -> None:
        if event.type != "user.updated":
            return
        if not SEARCHED_CUSTOMER_FIELDS & set(event.payload.get("changes", {})):
            return
        async with runtime.db.transaction() as session:
            await reindex_customer_tickets(
                session, workspace_id=event.workspace_id, user_id=event.payload["id"]
            )

    runtime.reactions.append(reindex_on_customer_change)


async def on_startup(runtime: Runtime) -> None:
    """Every set-up hook has run: the scheduler, when the process has one, is registered."""
    scheduler = runtime.services.get("scheduler")
    if scheduler is not None:
        scheduler.register(trash.JOB, trash.INTERVAL, partial(trash.purge_trash, runtime))
