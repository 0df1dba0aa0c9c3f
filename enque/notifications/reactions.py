"""Who is told what, from the events the ticket and comment services publish.

- `ticket.created`: its assignee (`ticket.assigned`) and the members of its team
  (`ticket.created`);
- `ticket.updated` with a new assignee: that agent (`ticket.assigned`);
- `comment.created` of a customer: the ticket's assignee (`customer.replied`);
- `comment.created` of an internal note: every agent it mentions (`mention`), named in the
  note's `mentions` or written in its text as `@Display Name` or `@email`; `comment.updated`
  of a note: the agents the edit newly mentions.
Whoever made the change is never told about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.agents.models import Agent, AgentWorkspace
from enque.core.db import commits
from enque.core.events import Event, delivering
from enque.core.runtime import Runtime
from enque.customers.models import User
from enque.notifications.models import Notification
from enque.notifications.service import notify
from enque.teams.models import TeamMember
from enque.tickets.models import Ticket

EXCERPT = 280
SLA_EVENTS = frozenset({"sla.warning", "sla.breached"})
HANDLED = frozenset(
    {"ticket.created", "ticket.updated", "comment.created", "comment.updated", *SLA_EVENTS}
)
_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class TicketRef:
    id: str
    number: int
    subject: str
    assignee_id: str | None
    team_id: str | None


async def load_ticket(session: AsyncSession, workspace_id: str, ticket_id: str) -> TicketRef | None:
    row = (
        await session.execute(
            select(
                Ticket.id, Ticket.number, Ticket.subject, Ticket.assignee_id, Ticket.team_id
            ).where(
                Ticket.workspace_id == workspace_id,
                Ticket.id == ticket_id,
                Ticket.deleted_at.is_(None),
            )
        )
    ).first()
    return TicketRef(*row) if row else None


async def _actor(session: AsyncSession, actor: dict[str, Any] | None) -> dict[str, Any]:
    kind = (actor or {}).get("type") or "system"
    actor_id = (actor or {}).get("id")
    name: str | None = None
    if kind == "agent" and actor_id:
        name = await session.scalar(select(Agent.display_name).where(Agent.id == actor_id))
    elif kind == "user" and actor_id:
        name = await session.scalar(select(User.name).where(User.id == actor_id))
    elif kind == "automation":
        name = "Automation"
    return {"type": kind, "id": actor_id, "name": name or ""}


def _excerpt(text: str | None) -> str | None:
    if not text:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[: EXCERPT - 1].rstrip() + "…"


def payload_of(ticket: TicketRef, actor: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "ticket": {"id": ticket.id, "number": ticket.number, "subject": ticket.subject},
        "actor": actor,
        **extra,
    }


async def team_members(session: AsyncSession, workspace_id: str, team_id: str) -> list[str]:
    rows = await session.execute(
        select(TeamMember.agent_id).where(
            TeamMember.workspace_id == workspace_id, TeamMember.team_id == team_id
        )
    )
    return list(rows.scalars())


# ---------------------------------------------------------------- @mentions


async def mentioned_in(session: AsyncSession, workspace_id: str, text: str) -> list[str]:
    """Active agents of the workspace written as `@Display Name`, `@email` or `@local-part`
    (the local part only when no other agent shares it) in `text`; longest name wins."""
    if "@" not in text:
        return []
    rows = await session.execute(
        select(Agent.id, Agent.email, Agent.display_name)
        .join(AgentWorkspace, AgentWorkspace.agent_id == Agent.id)
        .where(
            AgentWorkspace.workspace_id == workspace_id,
            AgentWorkspace.is_active.is_(True),
            Agent.is_active.is_(True),
        )
    )
    names: dict[str, set[str]] = {}
    for agent_id, email, display_name in rows.tuples():
        for name in (email, display_name, email.rpartition("@")[0]):
            folded = " ".join(name.split()).casefold()
            if folded:
                names.setdefault(folded, set()).add(agent_id)
    unique = {name: next(iter(ids)) for name, ids in names.items() if len(ids) == 1}
    if not unique:
        return []
    ordered = sorted(unique, key=len, reverse=True)
    folded_text = " ".join(text.split()).casefold()
    found: list[str] = []
    for match in re.finditer(r"(?<![\w.@])@", folded_text):
        rest = folded_text[match.end() :]
        for name in ordered:
            if rest.startswith(name) and not _WORD.match(rest[len(name) : len(name) + 1]):
                found.append(unique[name])
                break
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- the reaction


def relevant(event: Event) -> bool:
    """Whether the event may tell anyone, judged from its payload (no database work)."""
    if event.type == "ticket.created":
        return bool(event.payload.get("assignee") or event.payload.get("team"))
    if event.type == "ticket.updated":
        change = (event.payload.get("changes") or {}).get("assigneeId")
        return bool(change and change[1])
    if event.type in SLA_EVENTS:
        return bool(event.payload.get("assigneeId") or event.payload.get("teamId"))
    if event.type in ("comment.created", "comment.updated"):
        comment = event.payload.get("comment") or {}
        if comment.get("kind") == "note":
            return bool(comment.get("mentions")) or "@" in (comment.get("text") or "")
        return comment.get("kind") == "customer"
    return False


def _customer_message(event: Event) -> bool:
    comment = event.payload.get("comment") or {}
    return event.type == "comment.created" and comment.get("kind") == "customer"


@dataclass
class _Assignees:
    """The assignees of the tickets of one commit's customer messages, read together, and
    the process's commit count when they were read."""

    commits: int
    workspace_id: str
    of: dict[str, str | None]  # ticket → its assignee (None: unassigned, deleted or missing)


async def _unassigned(runtime: Runtime, event: Event) -> bool:
    """A customer's message on a ticket nobody is assigned to: no one to tell. One read for
    the customer messages of the commit being delivered (an email batch has many), read
    again once anything has committed since."""
    if not _customer_message(event):
        return False
    ticket_id = event.payload["ticketId"]
    delivery = delivering()
    known = delivery.memo.get(__name__) if delivery is not None else None
    if not (
        isinstance(known, _Assignees)
        and known.commits == commits()
        and known.workspace_id == event.workspace_id
        and ticket_id in known.of
    ):
        wanted = {ticket_id}
        if delivery is not None:
            wanted |= {
                e.payload["ticketId"]
                for e in delivery.events
                if e.workspace_id == event.workspace_id and _customer_message(e)
            }
        known = _Assignees(commits(), event.workspace_id, {})
        async with runtime.db.session(write=False) as session:
            rows = await session.execute(
                select(Ticket.id, Ticket.assignee_id).where(
                    Ticket.workspace_id == event.workspace_id,
                    Ticket.id.in_(wanted),
                    Ticket.deleted_at.is_(None),
                )
            )
            known.of = {str(tid): aid for tid, aid in rows.tuples()}
        for missing in wanted - set(known.of):
            known.of[missing] = None
        if delivery is not None:
            delivery.memo[__name__] = known
    return known.of[ticket_id] is None


async def react(runtime: Runtime, event: Event) -> None:
    if event.type not in HANDLED or not relevant(event):
        return
    if await _unassigned(runtime, event):
        return  # decided on a read: no write transaction (SQLite has one writer)
    actor_id = (event.actor or {}).get("id") if (event.actor or {}).get("type") == "agent" else None
    async with runtime.db.transaction() as session:
        if event.type == "ticket.created":
            await _on_created(session, event, actor_id)
        elif event.type == "ticket.updated":
            await _on_updated(session, event, actor_id)
        elif event.type in SLA_EVENTS:
            await _on_sla(session, event)
        else:
            await _on_comment(session, event, actor_id)


async def _on_created(session: AsyncSession, event: Event, actor_id: str | None) -> None:
    ticket = await load_ticket(session, event.workspace_id, event.payload["id"])
    if ticket is None:
        return
    actor = await _actor(session, event.actor)
    assigned: Sequence[str] = []
    if ticket.assignee_id:
        assigned = [ticket.assignee_id]
        await _tell(session, event, "ticket.assigned", assigned, ticket, actor, actor_id)
    if ticket.team_id:
        members = await team_members(session, event.workspace_id, ticket.team_id)
        await _tell(
            session,
            event,
            "ticket.created",
            members,
            ticket,
            actor,
            actor_id,
            also_skip=assigned,
            extra={"team": {"id": ticket.team_id}},
        )


async def _on_updated(session: AsyncSession, event: Event, actor_id: str | None) -> None:
    change = (event.payload.get("changes") or {}).get("assigneeId")
    if not change or not change[1]:
        return
    ticket = await load_ticket(session, event.workspace_id, event.payload["id"])
    if ticket is None or ticket.assignee_id != change[1]:
        return  # reassigned again since: that change tells its own assignee
    actor = await _actor(session, event.actor)
    await _tell(session, event, "ticket.assigned", [change[1]], ticket, actor, actor_id)


async def _on_sla(session: AsyncSession, event: Event) -> None:
    """A target about to be missed or missed: the assignee, else the ticket's team, is told."""
    ticket = await load_ticket(session, event.workspace_id, event.payload["ticketId"])
    if ticket is None:
        return
    if ticket.assignee_id:
        told: Sequence[str] = [ticket.assignee_id]
    elif ticket.team_id:
        told = await team_members(session, event.workspace_id, ticket.team_id)
    else:
        return
    extra = {"target": event.payload.get("target"), "dueAt": event.payload.get("dueAt")}
    actor = await _actor(session, event.actor)
    await _tell(session, event, event.type, told, ticket, actor, None, extra=extra)


async def _on_comment(session: AsyncSession, event: Event, actor_id: str | None) -> None:
    comment = event.payload.get("comment") or {}
    kind = comment.get("kind")
    if kind not in ("customer", "note"):
        return
    ticket = await load_ticket(session, event.workspace_id, event.payload["ticketId"])
    if ticket is None:
        return
    actor = await _actor(session, event.actor)
    extra = {"commentId": comment.get("id"), "excerpt": _excerpt(comment.get("text"))}
    if kind == "customer":
        if ticket.assignee_id:
            await _tell(
                session,
                event,
                "customer.replied",
                [ticket.assignee_id],
                ticket,
                actor,
                actor_id,
                extra=extra,
            )
        return
    named = list(comment.get("mentions") or [])
    written = await mentioned_in(session, event.workspace_id, comment.get("text") or "")
    if event.type == "comment.updated":  # an edited note tells only those it newly mentions
        told = await _told_of(session, event.workspace_id, ticket.id, comment.get("id"))
        named = [a for a in named if a not in told]
        written = [a for a in written if a not in told]
    await _tell(session, event, "mention", [*named, *written], ticket, actor, actor_id, extra=extra)


async def _told_of(
    session: AsyncSession, workspace_id: str, ticket_id: str, comment_id: str | None
) -> set[str]:
    """Agents already told of their mention in this note."""
    rows = await session.execute(
        select(Notification.agent_id, Notification.payload).where(
            Notification.workspace_id == workspace_id,
            Notification.ticket_id == ticket_id,
            Notification.event == "mention",
        )
    )
    return {
        agent for agent, payload in rows.tuples() if (payload or {}).get("commentId") == comment_id
    }


async def _tell(
    session: AsyncSession,
    event: Event,
    kind: str,
    agent_ids: Iterable[str],
    ticket: TicketRef,
    actor: dict[str, Any],
    actor_id: str | None,
    also_skip: Iterable[str] = (),
    extra: dict[str, Any] | None = None,
) -> None:
    await notify(
        session,
        workspace_id=event.workspace_id,
        event=kind,
        agent_ids=agent_ids,
        ticket_id=ticket.id,
        payload=payload_of(ticket, actor, **(extra or {})),
        exclude=[actor_id, *also_skip],
    )
