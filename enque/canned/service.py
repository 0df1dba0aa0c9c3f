"""Canned replies: saved answers with placeholders, scoped to the workspace or to one team.

Scope: managers and admins see every canned reply; an agent sees the workspace-wide ones
(no team) and those of the teams they belong to. A canned reply outside the caller's scope
answers 404, like one of another workspace. Rendering (`render_canned_reply`) fills the
placeholders for one ticket (template.py) and counts the use with one atomic UPDATE.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.agents.models import Agent
from enque.agents.service import like_pattern
from enque.canned.models import CannedReply
from enque.core.api import PageParams
from enque.core.db import now, unit
from enque.core.errors import ApiError, conflict, not_found, validation_error
from enque.core.html import sanitize_html
from enque.core.pagination import Page, SortKey, keyset_page
from enque.customers.models import User
from enque.customers.seams import custom_fields_of
from enque.teams.models import TeamMember
from enque.teams.service import require_teams
from enque.tickets.models import Ticket
from enque.workspaces.models import Workspace

FIELDS = ("name", "description", "content", "shortcut", "team_id", "is_enabled")


@dataclass(frozen=True)
class Scope:
    """What a caller may see: everything (`team_ids` None) or workspace-wide + these teams."""

    team_ids: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self.team_ids is None


EVERYTHING = Scope()


async def scope_of(
    session: AsyncSession, *, workspace_id: str, agent_id: str, is_manager: bool
) -> Scope:
    if is_manager:
        return EVERYTHING
    rows = await session.execute(
        select(TeamMember.team_id).where(
            TeamMember.workspace_id == workspace_id, TeamMember.agent_id == agent_id
        )
    )
    return Scope(frozenset(rows.scalars().all()))


def _visible(stmt: Select[Any], scope: Scope) -> Select[Any]:
    if scope.everything:
        return stmt
    assert scope.team_ids is not None
    stmt = stmt.where(CannedReply.is_enabled.is_(True))
    if not scope.team_ids:
        return stmt.where(CannedReply.team_id.is_(None))
    return stmt.where(
        or_(CannedReply.team_id.is_(None), CannedReply.team_id.in_(sorted(scope.team_ids)))
    )


async def get_canned_reply(
    session: AsyncSession, *, workspace_id: str, canned_reply_id: str, scope: Scope = EVERYTHING
) -> CannedReply:
    stmt = select(CannedReply).where(
        CannedReply.workspace_id == workspace_id,
        CannedReply.id == canned_reply_id,
        CannedReply.deleted_at.is_(None),
    )
    found = (await session.execute(_visible(stmt, scope))).scalar_one_or_none()
    if found is None:
        raise not_found("Canned reply")
    return found


async def list_canned_replies(
    session: AsyncSession,
    *,
    workspace_id: str,
    scope: Scope,
    page: PageParams,
    q: str | None = None,
    team_id: str | None = None,
) -> Page[CannedReply]:
    """Live canned replies the caller may use, by name; `q` matches name or shortcut."""
    stmt = select(CannedReply).where(
        CannedReply.workspace_id == workspace_id, CannedReply.deleted_at.is_(None)
    )
    stmt = _visible(stmt, scope)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(
            or_(
                func.lower(CannedReply.name).like(pattern, escape="\\"),
                func.lower(CannedReply.shortcut).like(pattern, escape="\\"),
            )
        )
    if team_id is not None:
        stmt = stmt.where(CannedReply.team_id == team_id)
    keys = [SortKey(CannedReply.name), SortKey(CannedReply.id)]
    return await keyset_page(session, stmt, keys, page, lambda c: (c.name, c.id))


def _content(content: str) -> str:
    from enque.canned.template import TemplateProblem, check_template  # jinja2: on first use

    sanitized = sanitize_html(content)
    try:
        check_template(sanitized)
    except TemplateProblem as exc:
        raise validation_error("content", str(exc)) from exc
    if not sanitized.strip():
        raise validation_error("content", "the canned reply is empty")
    return sanitized


async def _check_shortcut(
    session: AsyncSession, workspace_id: str, shortcut: str, except_id: str | None = None
) -> None:
    stmt = select(CannedReply.id).where(
        CannedReply.workspace_id == workspace_id,
        func.lower(CannedReply.shortcut) == shortcut.lower(),
        CannedReply.deleted_at.is_(None),
    )
    if except_id:
        stmt = stmt.where(CannedReply.id != except_id)
    if (await session.execute(stmt)).first() is not None:
        raise conflict(
            "A canned reply with this shortcut exists", [{"path": "shortcut", "message": "taken"}]
        )


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise conflict("A canned reply with this shortcut exists") from exc


async def _check_fields(
    session: AsyncSession, workspace_id: str, values: dict[str, Any], except_id: str | None = None
) -> dict[str, Any]:
    if values.get("content") is not None:
        values["content"] = _content(values["content"])
    if values.get("shortcut"):
        await _check_shortcut(session, workspace_id, values["shortcut"], except_id)
    if values.get("team_id"):
        await require_teams(
            session, workspace_id=workspace_id, team_ids=[values["team_id"]], path="teamId"
        )
    return values


def _snapshot(reply: CannedReply) -> dict[str, Any]:
    return {to_camel(k): getattr(reply, k) for k in FIELDS if k != "content"}


async def create_canned_reply(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    name: str,
    content: str,
    description: str | None = None,
    shortcut: str | None = None,
    team_id: str | None = None,
    is_enabled: bool = True,
) -> CannedReply:
    async with unit(session):
        values = await _check_fields(
            session,
            workspace_id,
            {
                "name": name,
                "content": content,
                "description": description,
                "shortcut": shortcut,
                "team_id": team_id,
                "is_enabled": is_enabled,
            },
        )
        reply = CannedReply(
            workspace_id=workspace_id,
            created_by_id=actor.id if actor.type == "agent" else None,
            **values,
        )
        session.add(reply)
        await _flush(session)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="canned_reply.created",
            subject_type="canned_reply",
            subject_id=reply.id,
            after=_snapshot(reply),
        )
    return reply


async def update_canned_reply(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    canned_reply_id: str,
    changes: dict[str, Any],
) -> CannedReply:
    async with unit(session):
        reply = await get_canned_reply(
            session, workspace_id=workspace_id, canned_reply_id=canned_reply_id
        )
        changes = await _check_fields(
            session, workspace_id, {k: v for k, v in changes.items() if k in FIELDS}, reply.id
        )
        diff = {k: [getattr(reply, k), v] for k, v in changes.items() if getattr(reply, k) != v}
        if diff:
            for key, (_, value) in diff.items():
                setattr(reply, key, value)
            reply.updated_at = max(now(), reply.updated_at)
            await _flush(session)
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="canned_reply.updated",
                subject_type="canned_reply",
                subject_id=reply.id,
                before={to_camel(k): v[0] for k, v in diff.items()},
                after={to_camel(k): v[1] for k, v in diff.items()},
            )
    return reply


async def delete_canned_reply(
    session: AsyncSession, *, workspace_id: str, actor: Actor, canned_reply_id: str
) -> None:
    """Soft delete: no longer offered; its shortcut is free again."""
    async with unit(session):
        reply = await get_canned_reply(
            session, workspace_id=workspace_id, canned_reply_id=canned_reply_id
        )
        reply.deleted_at = now()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="canned_reply.deleted",
            subject_type="canned_reply",
            subject_id=reply.id,
            before=_snapshot(reply),
        )


# ---------------------------------------------------------------- rendering


async def placeholder_values(
    session: AsyncSession,
    *,
    workspace_id: str,
    ticket_id: str,
    agent_id: str | None,
    custom: Collection[str] = (),
) -> dict[str, dict[str, Any]]:
    """The documented placeholder values for a ticket (one query, one more for the agent, one
    for the custom fields of each object in `custom`: `ticket`, `customer`)."""
    row = (
        await session.execute(
            select(
                Ticket.id,
                Ticket.number,
                Ticket.subject,
                User.name,
                User.email,
                Workspace.name,
                Ticket.user_id,
            )
            .join(User, User.id == Ticket.user_id)
            .join(Workspace, Workspace.id == Ticket.workspace_id)
            .where(Ticket.workspace_id == workspace_id, Ticket.id == ticket_id)
        )
    ).first()
    if row is None:
        raise not_found("Ticket")
    agent: dict[str, Any] = {"name": None, "email": None}
    if agent_id is not None:
        found = (
            await session.execute(
                select(Agent.display_name, Agent.email).where(Agent.id == agent_id)
            )
        ).first()
        if found is not None:
            agent = {"name": found[0], "email": found[1]}
    values: dict[str, dict[str, Any]] = {"ticket": {}, "customer": {}}
    for owner, entity, entity_id in (("ticket", "ticket", row[0]), ("customer", "user", row[6])):
        if owner in custom:
            of_entity = await custom_fields_of(
                session, workspace_id=workspace_id, entity=entity, entity_ids=[entity_id]
            )
            values[owner] = of_entity.get(entity_id, {})
    return {
        "customer": {"name": row[3], "email": row[4], "custom": values["customer"]},
        "agent": agent,
        "ticket": {"id": row[0], "number": row[1], "subject": row[2], "custom": values["ticket"]},
        "workspace": {"name": row[5]},
    }


@dataclass
class Rendered:
    canned_reply_id: str
    ticket_id: str
    content: str
    usage_count: int


async def render_canned_reply(
    session: AsyncSession,
    *,
    workspace_id: str,
    canned_reply_id: str,
    ticket_id: str,
    agent_id: str | None,
    scope: Scope = EVERYTHING,
) -> Rendered:
    """The canned reply filled in for `ticket_id` as `agent_id` would send it; counts one use."""
    from enque.canned.template import TemplateProblem, check_template, render_template

    async with unit(session):
        reply = await get_canned_reply(
            session, workspace_id=workspace_id, canned_reply_id=canned_reply_id, scope=scope
        )
        if not reply.is_enabled:
            raise conflict("This canned reply is disabled")
        try:
            used = check_template(reply.content)
        except TemplateProblem as exc:
            raise ApiError(
                "CONFLICT", "The canned reply cannot be rendered", [{"message": str(exc)}]
            ) from exc
        values = await placeholder_values(
            session,
            workspace_id=workspace_id,
            ticket_id=ticket_id,
            agent_id=agent_id,
            custom={p.split(".")[0] for p in used if ".custom." in p},
        )
        try:
            content = sanitize_html(render_template(reply.content, values))
        except TemplateProblem as exc:
            raise ApiError(
                "CONFLICT", "The canned reply cannot be rendered", [{"message": str(exc)}]
            ) from exc
        count = (
            await session.execute(
                update(CannedReply)
                .where(CannedReply.id == reply.id)
                .values(usage_count=CannedReply.usage_count + 1, updated_at=CannedReply.updated_at)
                .returning(CannedReply.usage_count)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one()
    return Rendered(reply.id, ticket_id, content, count)


async def render_for_automation(
    session: AsyncSession,
    *,
    workspace_id: str,
    canned_reply_id: str,
    ticket_id: str,
    agent_id: str | None,
) -> str:
    """`runtime.services["canned_render"]`: the HTML for the `send_canned_reply` action."""
    rendered = await render_canned_reply(
        session,
        workspace_id=workspace_id,
        canned_reply_id=canned_reply_id,
        ticket_id=ticket_id,
        agent_id=agent_id,
    )
    return rendered.content


async def canned_reply_ids(session: AsyncSession, workspace_id: str, ids: set[str]) -> set[str]:
    """The ids among `ids` naming live canned replies of the workspace (automation lookups)."""
    rows = await session.execute(
        select(CannedReply.id).where(
            CannedReply.workspace_id == workspace_id,
            CannedReply.id.in_(ids),
            CannedReply.deleted_at.is_(None),
        )
    )
    return set(rows.scalars().all())
