"""Service levels: business hours, policies, and each ticket's due times and breaches.

A ticket's SLA state (`ticket_sla`) is derived from the ticket row by `sync_ticket`, run by a
reaction after every ticket or comment event, so the tickets domain knows nothing of SLAs:
- the policy is the first (by `position`) whose `match` fits the ticket's priority, team,
  mailbox and company (absent keys match anything);
- targets count business time from the ticket's creation (first response, resolution) or from
  the customer message awaiting an answer (next response);
- time spent `With User` does not count: entering it stamps `paused_at`, leaving it adds the
  business time since then to `paused_seconds`, which pushes the dues out;
- a target is breached when it is met after its due time, or unmet when its due time passes
  (`check_due`, the scheduler job, finds those, and warns `WARN_BEFORE` seconds ahead).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Integer, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.core.db import now, unit
from enque.core.errors import ApiError, not_found, validation_error
from enque.core.events import Event, emit
from enque.core.runtime import Runtime
from enque.sla.business_hours import Calendar, Interval, NoBusinessHours, parse_clock
from enque.sla.models import SLA_DUE_KEY, BusinessHours, SlaPolicy, TicketSla
from enque.tickets.models import Ticket

log = logging.getLogger(__name__)

TARGETS = ("firstResponse", "nextResponse", "resolution")
WARN_BEFORE = 15 * 60
MATCH_KEYS = {
    "priority": "priority",
    "teamId": "team_id",
    "mailboxId": "mailbox_id",
    "companyId": "company_id",
}


# ---------------------------------------------------------------- business hours


def calendar_of(hours: BusinessHours | None) -> Calendar:
    if hours is None or not hours.intervals:
        return Calendar.always_open()
    return Calendar(
        hours.timezone,
        tuple(
            Interval(int(i["day"]), parse_clock(i["start"]), parse_clock(i["end"]))
            for i in hours.intervals
        ),
        frozenset(date.fromisoformat(d) for d in hours.holidays),
    )


async def get_hours(session: AsyncSession, *, workspace_id: str) -> BusinessHours | None:
    return (
        await session.execute(
            select(BusinessHours).where(BusinessHours.workspace_id == workspace_id)
        )
    ).scalar_one_or_none()


def _check_hours(timezone: str, intervals: list[dict[str, Any]], holidays: list[str]) -> None:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise validation_error("timezone", "unknown time zone") from exc
    for i, interval in enumerate(intervals):
        try:
            Interval(
                int(interval["day"]), parse_clock(interval["start"]), parse_clock(interval["end"])
            )
        except (ValueError, KeyError) as exc:
            raise validation_error(f"intervals.{i}", str(exc) or "invalid interval") from exc
    for i, day in enumerate(holidays):
        try:
            date.fromisoformat(day)
        except ValueError as exc:
            raise validation_error(f"holidays.{i}", "must be YYYY-MM-DD") from exc


async def set_hours(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    timezone: str,
    intervals: list[dict[str, Any]],
    holidays: list[str],
) -> BusinessHours:
    _check_hours(timezone, intervals, holidays)
    async with unit(session):
        hours = await get_hours(session, workspace_id=workspace_id)
        if hours is None:
            hours = BusinessHours(workspace_id=workspace_id)
            session.add(hours)
        hours.timezone = timezone
        hours.intervals = intervals
        hours.holidays = sorted(set(holidays))
        await session.flush()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="business_hours.updated",
            subject_type="business_hours",
            subject_id=hours.id,
            after={"timezone": timezone, "intervals": intervals, "holidays": hours.holidays},
        )
    return hours


# ---------------------------------------------------------------- policies


async def get_policy(session: AsyncSession, *, workspace_id: str, policy_id: str) -> SlaPolicy:
    policy = (
        await session.execute(
            select(SlaPolicy).where(
                SlaPolicy.workspace_id == workspace_id, SlaPolicy.id == policy_id
            )
        )
    ).scalar_one_or_none()
    if policy is None:
        raise not_found("SLA policy")
    return policy


async def list_policies(session: AsyncSession, *, workspace_id: str) -> list[SlaPolicy]:
    rows = await session.execute(
        select(SlaPolicy)
        .where(SlaPolicy.workspace_id == workspace_id)
        .order_by(SlaPolicy.position, SlaPolicy.id)
    )
    return list(rows.scalars())


async def create_policy(
    session: AsyncSession, *, workspace_id: str, actor: Actor, fields: dict[str, Any]
) -> SlaPolicy:
    async with unit(session):
        policy = SlaPolicy(workspace_id=workspace_id, **fields)
        session.add(policy)
        await session.flush()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="sla_policy.created",
            subject_type="sla_policy",
            subject_id=policy.id,
            after={"name": policy.name},
        )
    return policy


async def update_policy(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    policy_id: str,
    changes: dict[str, Any],
) -> SlaPolicy:
    async with unit(session):
        policy = await get_policy(session, workspace_id=workspace_id, policy_id=policy_id)
        for key, value in changes.items():
            setattr(policy, key, value)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="sla_policy.updated",
            subject_type="sla_policy",
            subject_id=policy.id,
            after=dict(changes),
        )
    return policy


async def delete_policy(
    session: AsyncSession, *, workspace_id: str, actor: Actor, policy_id: str
) -> None:
    async with unit(session):
        policy = await get_policy(session, workspace_id=workspace_id, policy_id=policy_id)
        await session.delete(policy)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="sla_policy.deleted",
            subject_type="sla_policy",
            subject_id=policy_id,
            before={"name": policy.name},
        )


def matches(policy: SlaPolicy, ticket: Ticket) -> bool:
    return all(
        getattr(ticket, MATCH_KEYS[key]) == value
        for key, value in (policy.match or {}).items()
        if key in MATCH_KEYS and value is not None
    )


# ---------------------------------------------------------------- ticket state


@dataclass
class Due:
    target: str
    due_at: int
    met_at: int | None


def _dues(state: TicketSla, policy: SlaPolicy, ticket: Ticket, cal: Calendar) -> list[Due]:
    paused = state.paused_seconds
    found = []
    if policy.first_response_minutes is not None:
        due = cal.add(ticket.created_at, policy.first_response_minutes * 60 + paused)
        found.append(Due("firstResponse", due, ticket.first_response_at))
    customer, agent = ticket.last_customer_reply_at, ticket.last_agent_reply_at
    if (
        policy.next_response_minutes is not None
        and ticket.first_response_at is not None
        and customer is not None
        and (agent is None or agent < customer)
    ):
        found.append(
            Due("nextResponse", cal.add(customer, policy.next_response_minutes * 60), None)
        )
    if policy.resolution_minutes is not None:
        due = cal.add(ticket.created_at, policy.resolution_minutes * 60 + paused)
        met = ticket.closed_at if ticket.status == "Closed" else None
        found.append(Due("resolution", due, met))
    return found


def _apply(
    state: TicketSla, dues: list[Due], moment: int, closed: bool = False
) -> tuple[list[str], list[str]]:
    """Set the due columns and flags; the targets newly breached and newly warned."""
    by_target = {d.target: d for d in dues}
    state.first_response_due_at = _due("firstResponse", by_target)
    state.next_response_due_at = _due("nextResponse", by_target)
    state.resolution_due_at = _due("resolution", by_target)
    breached = list(state.breached or [])
    warned = list(state.warned or [])
    new_breaches, new_warnings = [], []
    pending = []
    for due in dues:
        late = (due.met_at is not None and due.met_at > due.due_at) or (
            due.met_at is None and not closed and state.paused_at is None and moment >= due.due_at
        )
        if late and due.target not in breached:
            breached.append(due.target)
            new_breaches.append(due.target)
        if due.met_at is None and not closed:  # a closed ticket owes nothing more
            pending.append(due.due_at)
            if (
                state.paused_at is None
                and not late
                and moment >= due.due_at - WARN_BEFORE
                and due.target not in warned
            ):
                warned.append(due.target)
                new_warnings.append(due.target)
    state.breached = breached
    state.warned = warned
    state.is_breached = bool(breached)
    state.next_due_at = min(pending) if pending and state.paused_at is None else None
    return new_breaches, new_warnings


def _due(target: str, by_target: dict[str, Due]) -> int | None:
    due = by_target.get(target)
    return due.due_at if due else None


def state_out(state: TicketSla | None, policy_name: str | None = None) -> dict[str, Any]:
    if state is None:
        return {
            "policyId": None,
            "firstResponseDueAt": None,
            "nextResponseDueAt": None,
            "resolutionDueAt": None,
            "nextDueAt": None,
            "pausedAt": None,
            "breached": [],
            "isBreached": False,
        }
    return {
        "policyId": state.policy_id,
        "firstResponseDueAt": state.first_response_due_at,
        "nextResponseDueAt": state.next_response_due_at,
        "resolutionDueAt": state.resolution_due_at,
        "nextDueAt": state.next_due_at,
        "pausedAt": state.paused_at,
        "breached": list(state.breached or []),
        "isBreached": state.is_breached,
    }


async def sync_ticket(
    session: AsyncSession, *, workspace_id: str, ticket_id: str, at: int | None = None
) -> TicketSla | None:
    """Bring the ticket's SLA state in line with the ticket; emits `sla.*` after commit."""
    moment = now() if at is None else at
    async with unit(session):
        ticket = (
            await session.execute(
                select(Ticket).where(Ticket.workspace_id == workspace_id, Ticket.id == ticket_id)
            )
        ).scalar_one_or_none()
        stmt = select(TicketSla).where(TicketSla.ticket_id == ticket_id)
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        state = (await session.execute(stmt)).scalar_one_or_none()
        if ticket is None or ticket.deleted_at is not None or ticket.merged_into_ticket_id:
            if state is not None:
                await session.delete(state)
            return None
        policy = next(
            (
                p
                for p in await list_policies(session, workspace_id=workspace_id)
                if matches(p, ticket)
            ),
            None,
        )
        if policy is None:
            if state is not None:
                await session.delete(state)
            return None
        cal = calendar_of(await get_hours(session, workspace_id=workspace_id))
        if state is None:
            state = TicketSla(
                ticket_id=ticket.id,
                workspace_id=workspace_id,
                breached=[],
                warned=[],
                paused_seconds=0,
            )
            session.add(state)
        state.policy_id = policy.id
        if ticket.status == "With User" and state.paused_at is None:
            state.paused_at = moment
        elif ticket.status != "With User" and state.paused_at is not None:
            state.paused_seconds += cal.between(state.paused_at, moment)
            state.paused_at = None
        try:
            dues = _dues(state, policy, ticket, cal)
        except NoBusinessHours:
            dues = []
        breaches, warnings = _apply(state, dues, moment, closed=ticket.status == "Closed")
        await session.flush()
        _announce(session, ticket, state, breaches, warnings)
    return state


def _announce(
    session: AsyncSession,
    ticket: Ticket,
    state: TicketSla,
    breaches: list[str],
    warnings: list[str],
) -> None:
    dues = {
        "firstResponse": state.first_response_due_at,
        "nextResponse": state.next_response_due_at,
        "resolution": state.resolution_due_at,
    }
    for kind, targets in (("sla.breached", breaches), ("sla.warning", warnings)):
        for target in targets:
            emit(
                session,
                Event(
                    kind,
                    ticket.workspace_id,
                    {
                        "ticketId": ticket.id,
                        "target": target,
                        "dueAt": dues[target],
                        "policyId": state.policy_id,
                        "teamId": ticket.team_id,
                        "assigneeId": ticket.assignee_id,
                    },
                    channels=["tickets", f"ticket:{ticket.id}"],
                ),
            )


async def check_due(runtime: Runtime, *, at: int | None = None, batch: int = 500) -> int:
    """Re-sync tickets whose soonest due time is near or past (the scheduler job)."""
    moment = now() if at is None else at
    async with runtime.db.session(write=False) as session:
        rows = (
            await session.execute(
                select(TicketSla.workspace_id, TicketSla.ticket_id)
                .where(
                    TicketSla.next_due_at.is_not(None),
                    TicketSla.next_due_at <= moment + WARN_BEFORE,
                )
                .order_by(TicketSla.next_due_at)
                .limit(batch)
            )
        ).all()
    changed = 0
    for workspace_id, ticket_id in rows:
        async with runtime.db.transaction() as session:
            before = await session.get(TicketSla, ticket_id)
            seen = (list(before.breached), list(before.warned)) if before else None
            state = await sync_ticket(
                session, workspace_id=workspace_id, ticket_id=ticket_id, at=moment
            )
            if state is not None and (list(state.breached), list(state.warned)) != seen:
                changed += 1
    return changed


async def ticket_state(
    session: AsyncSession, *, workspace_id: str, ticket_id: str
) -> dict[str, Any]:
    found = (
        await session.execute(
            select(Ticket.id).where(
                Ticket.workspace_id == workspace_id,
                Ticket.id == ticket_id,
                Ticket.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if found is None:
        raise not_found("Ticket")
    state = await session.get(TicketSla, ticket_id)
    return {"ticketId": ticket_id, **state_out(state)}


async def report(
    session: AsyncSession, *, workspace_id: str, by: str, since: int | None, until: int | None
) -> list[dict[str, Any]]:
    """SLA attainment per team or agent: tickets with a policy, how many breached."""
    if by not in ("team", "agent"):
        raise ApiError("VALIDATION_ERROR", details=[{"path": "by", "message": "team or agent"}])
    key = Ticket.team_id if by == "team" else Ticket.assignee_id
    stmt = (
        select(key, func.count(), func.sum(func.cast(TicketSla.is_breached, Integer())))
        .join(Ticket, Ticket.id == TicketSla.ticket_id)
        .where(TicketSla.workspace_id == workspace_id, Ticket.deleted_at.is_(None))
        .group_by(key)
    )
    if since is not None:
        stmt = stmt.where(Ticket.created_at >= since)
    if until is not None:
        stmt = stmt.where(Ticket.created_at < until)
    out = []
    for group, total, breached in (await session.execute(stmt)).all():
        breached = int(breached or 0)
        out.append(
            {
                "groupId": group,
                "tickets": int(total),
                "breached": breached,
                "attainment": round((total - breached) / total, 4) if total else None,
            }
        )
    return sorted(out, key=lambda r: (r["groupId"] is None, r["groupId"] or ""))


async def due_tickets(
    session: AsyncSession,
    *,
    workspace_id: str,
    breached: bool | None,
    limit: int,
    cursor: list[Any] | None,
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """Tickets under an SLA, soonest due first (then paused and met ones), keyset paged."""
    due_key = SLA_DUE_KEY
    stmt = (
        select(
            TicketSla,
            Ticket.number,
            Ticket.subject,
            Ticket.status,
            Ticket.priority,
            Ticket.team_id,
            Ticket.assignee_id,
            due_key.label("due_key"),
        )
        .join(Ticket, Ticket.id == TicketSla.ticket_id)
        .where(TicketSla.workspace_id == workspace_id, Ticket.deleted_at.is_(None))
    )
    if breached is not None:
        stmt = stmt.where(TicketSla.is_breached.is_(breached))
    if cursor:
        stmt = stmt.where(tuple_(due_key, TicketSla.ticket_id) > tuple_(cursor[0], cursor[1]))
    rows = (
        await session.execute(stmt.order_by(due_key, TicketSla.ticket_id).limit(limit + 1))
    ).all()
    items = [
        {
            "ticketId": row[0].ticket_id,
            **state_out(row[0]),
            "number": row.number,
            "subject": row.subject,
            "status": row.status,
            "priority": row.priority,
            "teamId": row.team_id,
            "assigneeId": row.assignee_id,
        }
        for row in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    return items, [last.due_key, last[0].ticket_id] if last is not None else None
