"""What automation rules see of a ticket, and how their actions change it.

Registered from `enque/tickets/hooks.py` as `runtime.services["ticket_facts"]`,
`runtime.services["automation_executor"]` and the `lookups` the rule validator uses. Every
action goes through a ticket or comment service function, acting as
`Actor("automation", rule)`; the field changes of one pass are one update of the ticket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.automations.custom import condition_field
from enque.automations.engine import FIELD_ACTIONS, Operation, TicketFacts
from enque.automations.executor import ActionContext
from enque.categories.models import Category
from enque.comments.service import add_note, add_reply
from enque.core.errors import ApiError
from enque.core.runtime import runtime_of
from enque.customers.models import Company, User
from enque.customers.seams import custom_fields_of
from enque.mailboxes.models import EmailMessage, Mailbox
from enque.sla.models import TicketSla
from enque.tickets.models import Ticket, TicketBody
from enque.tickets.service import AttributedChange, update_tickets_attributed


async def load_ticket_facts(
    session: AsyncSession, workspace_id: str, ticket_ids: Sequence[str], *, custom: bool = True
) -> dict[str, TicketFacts]:
    """One query: the live tickets among `ticket_ids`, their first message's text, their
    customer's address, how the newest mail received on each was classified (automated mail is
    never answered) and the SLA targets each was warned of and missed; then, with `custom`,
    one query per entity for the custom field values of the tickets, their customers and their
    companies (rules that name none skip them)."""
    if not ticket_ids:
        return {}
    newest_mail = (
        select(EmailMessage.classification)
        .where(
            EmailMessage.ticket_id == Ticket.id,
            EmailMessage.direction == "in",
            EmailMessage.state == "processed",
        )
        .order_by(EmailMessage.created_at.desc(), EmailMessage.id.desc())
        .limit(1)
        .correlate(Ticket)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(
            Ticket,
            TicketBody.plain_text,
            User.email,
            newest_mail,
            TicketSla.warned,
            TicketSla.breached,
        )
        .outerjoin(TicketBody, TicketBody.ticket_id == Ticket.id)
        .join(User, User.id == Ticket.user_id)
        .outerjoin(TicketSla, TicketSla.ticket_id == Ticket.id)
        .where(
            Ticket.workspace_id == workspace_id,
            Ticket.id.in_(list(ticket_ids)),
            Ticket.deleted_at.is_(None),
            Ticket.merged_into_ticket_id.is_(None),
        )
    )
    found = list(rows.tuples())
    tickets = [row[0] for row in found]
    values = await _custom_values(session, workspace_id, tickets) if custom else {}
    return {
        ticket.id: _facts(ticket, body, email, newest, warned, breached, values.get(ticket.id, {}))
        for ticket, body, email, newest, warned, breached in found
    }


async def _custom_values(
    session: AsyncSession, workspace_id: str, tickets: Sequence[Ticket]
) -> dict[str, dict[str, Any]]:
    """Ticket id → `{condition name: value}` of the ticket's, customer's and company's fields."""
    owners = {
        "ticket": {t.id: t.id for t in tickets},
        "user": {t.id: t.user_id for t in tickets},
        "company": {t.id: t.company_id for t in tickets if t.company_id},
    }
    merged: dict[str, dict[str, Any]] = {t.id: {} for t in tickets}
    for entity, owner_of in owners.items():
        if not owner_of:
            continue
        found = await custom_fields_of(
            session,
            workspace_id=workspace_id,
            entity=entity,
            entity_ids=list(set(owner_of.values())),
        )
        for ticket_id, owner in owner_of.items():
            for key, value in found.get(owner, {}).items():
                merged[ticket_id][condition_field(entity, key)] = value
    return merged


def _facts(
    ticket: Ticket,
    body: str | None,
    email: str | None,
    newest: str | None,
    warned: Sequence[str] | None,
    breached: Sequence[str] | None,
    custom: dict[str, Any],
) -> TicketFacts:
    return TicketFacts(
        id=ticket.id,
        workspace_id=ticket.workspace_id,
        subject=ticket.subject,
        body=body or "",
        status=ticket.status,
        priority=ticket.priority,
        customer_email=email,
        mailbox_id=ticket.mailbox_id,
        assignee_id=ticket.assignee_id,
        team_id=ticket.team_id,
        category_id=ticket.category_id,
        company_id=ticket.company_id,
        tags=tuple(ticket.tags or ()),
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        last_customer_reply_at=ticket.last_customer_reply_at,
        last_agent_reply_at=ticket.last_agent_reply_at,
        sender_is_automated=newest not in (None, "normal"),
        sla_warned=tuple(warned or ()),
        sla_breached=tuple(breached or ()),
        custom=custom,
    )


class TicketActions:
    """The automation executor: field changes through `update_tickets_attributed`, one update
    per ticket; notes, canned replies and notices through their own service functions."""

    async def change_tickets(
        self,
        session: AsyncSession,
        workspace_id: str,
        changes: Mapping[str, Sequence[Operation]],
    ) -> dict[str, list[str | None]]:
        refused = await update_tickets_attributed(
            session,
            workspace_id=workspace_id,
            changes={
                ticket_id: [
                    # set_* name a field; add_tag / remove_tag pass as they are
                    AttributedChange(
                        FIELD_ACTIONS.get(op.type, op.type),
                        op.value,
                        Actor("automation", op.rule_id),
                    )
                    for op in ops
                ]
                for ticket_id, ops in changes.items()
            },
        )
        return {
            ticket_id: [None if err is None else err.message for err in errors]
            for ticket_id, errors in refused.items()
        }

    async def add_note(self, ctx: ActionContext, content: str) -> None:
        await add_note(
            ctx.session,
            workspace_id=ctx.workspace_id,
            actor=ctx.actor,
            ticket_id=ctx.ticket_id,
            content=content,
        )

    async def send_canned_reply(self, ctx: ActionContext, canned_reply_id: str) -> None:
        """Render the canned reply for this ticket and send it as a public reply."""
        render = runtime_of(ctx.session).services.get("canned_render")
        if render is None:
            raise ApiError("INTEGRATION_ERROR", "Canned replies are not available")
        content = await render(
            ctx.session,
            workspace_id=ctx.workspace_id,
            canned_reply_id=canned_reply_id,
            ticket_id=ctx.ticket_id,
            agent_id=None,
        )
        await add_reply(
            ctx.session,
            workspace_id=ctx.workspace_id,
            actor=ctx.actor,
            ticket_id=ctx.ticket_id,
            content=content,
        )

    async def notify_agents(self, ctx: ActionContext, agent_ids: list[str]) -> None:
        """Hand the notice to the notifications domain; the audit log keeps it either way."""
        notify = runtime_of(ctx.session).services.get("notify_agents")
        if notify is not None:
            await notify(
                ctx.session,
                workspace_id=ctx.workspace_id,
                agent_ids=agent_ids,
                ticket_id=ctx.ticket_id,
                reason=f"automation:{ctx.actor.id}",
            )
        record(
            ctx.session,
            workspace_id=ctx.workspace_id,
            actor=ctx.actor,
            verb="automation.notified",
            subject_type="ticket",
            subject_id=ctx.ticket_id,
            after={"agentIds": agent_ids},
        )


async def _existing(
    session: AsyncSession, model: type, workspace_id: str, ids: set[str]
) -> set[str]:
    stmt = select(model.id).where(  # type: ignore[attr-defined]
        model.workspace_id == workspace_id,  # type: ignore[attr-defined]
        model.id.in_(ids),  # type: ignore[attr-defined]
        model.deleted_at.is_(None),  # type: ignore[attr-defined]
    )
    return set((await session.execute(stmt)).scalars())


async def category_ids(session: AsyncSession, workspace_id: str, ids: set[str]) -> set[str]:
    return await _existing(session, Category, workspace_id, ids)


async def company_ids(session: AsyncSession, workspace_id: str, ids: set[str]) -> set[str]:
    return await _existing(session, Company, workspace_id, ids)


async def mailbox_ids(session: AsyncSession, workspace_id: str, ids: set[str]) -> set[str]:
    return await _existing(session, Mailbox, workspace_id, ids)
