"""Keeps ticket search documents in step with customer names, emails and custom field values;
empties the trash."""

from __future__ import annotations

from functools import partial

from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.tickets import automation, trash
from enque.tickets.service import reindex_customer_tickets, ticket_exists

SEARCHED_CUSTOMER_FIELDS = frozenset({"name", "email"})


def _changes_customer_search(event: Event) -> bool:
    """A customer's name, email or custom field values changed (each is in the search
    documents of the customer's tickets)."""
    if event.type == "custom_fields.updated":
        return bool(event.payload.get("entity") == "user")
    changed = set(event.payload.get("changes", {}))
    return event.type == "user.updated" and bool(SEARCHED_CUSTOMER_FIELDS & changed)


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
        if not _changes_customer_search(event):
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
