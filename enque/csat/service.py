"""CSAT: a satisfaction survey mailed when a ticket closes, answered once through a link.

The link carries a random token (only its SHA-256 is stored), valid `TOKEN_DAYS` days and for
one answer; no login. Closing the same ticket again sends no second survey while one is open.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Integer, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import SYSTEM, Actor, record
from enque.core.db import now, unit
from enque.core.errors import ApiError, conflict, not_found
from enque.core.events import Event, emit
from enque.core.mail import Mail, send_after_commit
from enque.core.runtime import Runtime, runtime_of
from enque.core.security import token_hash
from enque.csat.models import CsatResponse, CsatSettings
from enque.customers.models import User
from enque.tickets.models import Ticket
from enque.workspaces.models import Workspace

TOKEN_DAYS = 30


async def get_settings(session: AsyncSession, *, workspace_id: str) -> bool:
    row = await session.get(CsatSettings, workspace_id)
    return bool(row and row.enabled)


async def set_settings(
    session: AsyncSession, *, workspace_id: str, actor: Actor, enabled: bool
) -> bool:
    async with unit(session):
        row = await session.get(CsatSettings, workspace_id)
        if row is None:
            row = CsatSettings(workspace_id=workspace_id)
            session.add(row)
        row.enabled = enabled
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="csat.settings",
            subject_type="workspace",
            subject_id=workspace_id,
            after={"enabled": enabled},
        )
    return enabled


def survey_link(runtime: Runtime, token: str) -> str:
    return f"{runtime.settings.public_url.rstrip('/')}/csat/{token}"


async def send_survey(session: AsyncSession, *, workspace_id: str, ticket_id: str) -> str | None:
    """Mail the survey of a just-closed ticket (when enabled); the token, or None."""
    async with unit(session):
        if not await get_settings(session, workspace_id=workspace_id):
            return None
        row = (
            await session.execute(
                select(Ticket, User.email, User.name, Workspace.name)
                .join(User, User.id == Ticket.user_id)
                .join(Workspace, Workspace.id == Ticket.workspace_id)
                .where(Ticket.workspace_id == workspace_id, Ticket.id == ticket_id)
            )
        ).first()
        if row is None or row[0].status != "Closed" or not row[1]:
            return None
        ticket, email, name, workspace_name = row
        moment = now()
        open_one = (
            await session.execute(
                select(CsatResponse.id).where(
                    CsatResponse.workspace_id == workspace_id,
                    CsatResponse.ticket_id == ticket_id,
                    CsatResponse.responded_at.is_(None),
                    CsatResponse.expires_at > moment,
                )
            )
        ).first()
        if open_one is not None:
            return None
        token = secrets.token_urlsafe(32)
        session.add(
            CsatResponse(
                workspace_id=workspace_id,
                ticket_id=ticket_id,
                agent_id=ticket.assignee_id,
                team_id=ticket.team_id,
                token_hash=token_hash(token),
                sent_to=email,
                expires_at=moment + TOKEN_DAYS * 86400,
            )
        )
        link = survey_link(runtime_of(session), token)
        text = (
            f'Hello {name or ""},\n\nYour request #{ticket.number} "{ticket.subject}" to '
            f"{workspace_name} was closed. How did we do? Rate us in one click:\n\n{link}\n\n"
            f"The link works once, for {TOKEN_DAYS} days.\n"
        )
        subject = f"How did we do? [#{ticket.number}]"
        send_after_commit(session, Mail(to=email, subject=" ".join(subject.split()), text=text))
    return token


async def _by_token(session: AsyncSession, token: str) -> tuple[CsatResponse, Ticket, str]:
    row = (
        await session.execute(
            select(CsatResponse, Ticket, Workspace.name)
            .join(Ticket, Ticket.id == CsatResponse.ticket_id)
            .join(Workspace, Workspace.id == CsatResponse.workspace_id)
            .where(CsatResponse.token_hash == token_hash(token))
        )
    ).first()
    if row is None or row[0].expires_at <= now():
        raise not_found("Survey")
    return row[0], row[1], row[2]


async def survey(session: AsyncSession, *, token: str) -> dict[str, Any]:
    response, ticket, workspace_name = await _by_token(session, token)
    return {
        "ticketNumber": ticket.number,
        "subject": ticket.subject,
        "workspaceName": workspace_name,
        "answered": response.responded_at is not None,
    }


async def answer(
    session: AsyncSession, *, token: str, rating: int, comment: str | None
) -> dict[str, Any]:
    async with unit(session):
        response, ticket, _ = await _by_token(session, token)
        if response.responded_at is not None:
            raise conflict("This survey has been answered")
        response.rating = rating
        response.comment = comment
        response.responded_at = now()
        record(
            session,
            workspace_id=response.workspace_id,
            actor=SYSTEM,
            verb="csat.received",
            subject_type="ticket",
            subject_id=ticket.id,
            after={"rating": rating},
        )
        emit(
            session,
            Event(
                "csat.received",
                response.workspace_id,
                {
                    "ticketId": ticket.id,
                    "rating": rating,
                    "comment": comment,
                    "agentId": response.agent_id,
                    "teamId": response.team_id,
                },
                channels=["tickets", f"ticket:{ticket.id}"],
            ),
        )
    return {"rating": rating, "comment": comment, "respondedAt": response.responded_at}


async def for_ticket(
    session: AsyncSession, *, workspace_id: str, ticket_id: str
) -> list[dict[str, Any]]:
    found = (
        await session.execute(
            select(Ticket.id).where(Ticket.workspace_id == workspace_id, Ticket.id == ticket_id)
        )
    ).first()
    if found is None:
        raise not_found("Ticket")
    rows = await session.execute(
        select(CsatResponse)
        .where(CsatResponse.workspace_id == workspace_id, CsatResponse.ticket_id == ticket_id)
        .order_by(CsatResponse.id)
    )
    return [
        {
            "id": r.id,
            "sentTo": r.sent_to,
            "agentId": r.agent_id,
            "teamId": r.team_id,
            "rating": r.rating,
            "comment": r.comment,
            "respondedAt": r.responded_at,
            "createdAt": r.created_at,
        }
        for r in rows.scalars()
    ]


async def report(
    session: AsyncSession, *, workspace_id: str, by: str, since: int | None, until: int | None
) -> list[dict[str, Any]]:
    """Per agent or team: surveys sent, answered, average rating, share of 4-5 ratings."""
    if by not in ("agent", "team"):
        raise ApiError("VALIDATION_ERROR", details=[{"path": "by", "message": "agent or team"}])
    key = CsatResponse.agent_id if by == "agent" else CsatResponse.team_id
    answered = CsatResponse.responded_at.is_not(None)
    stmt = (
        select(
            key,
            func.count(),
            func.count(CsatResponse.responded_at),
            func.avg(CsatResponse.rating),
            func.sum(func.cast(and_(answered, CsatResponse.rating >= 4), Integer())),
        )
        .where(CsatResponse.workspace_id == workspace_id)
        .group_by(key)
    )
    if since is not None:
        stmt = stmt.where(CsatResponse.created_at >= since)
    if until is not None:
        stmt = stmt.where(CsatResponse.created_at < until)
    out = []
    for group, sent, got, average, happy in (await session.execute(stmt)).all():
        out.append(
            {
                "groupId": group,
                "sent": int(sent),
                "answered": int(got),
                "averageRating": round(float(average), 2) if average is not None else None,
                "satisfied": round(int(happy or 0) / got, 4) if got else None,
            }
        )
    return sorted(out, key=lambda r: (r["groupId"] is None, r["groupId"] or ""))
