"""Invitations: the only way into an existing workspace (besides the operator's CLI).

The token is mailed once and stored only as its SHA-256; it is single-use and expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.agents.models import Agent, AgentInvitation, AgentWorkspace
from enque.agents.service import join_workspace
from enque.auth.service import SignedIn, find_agent_by_email, issue_session
from enque.core.api import PageParams
from enque.core.db import now, unit
from enque.core.errors import ApiError, conflict, not_found, unauthorized, validation_error
from enque.core.mail import invitation_mail, send_after_commit
from enque.core.pagination import Page, SortKey, keyset_page
from enque.core.runtime import runtime_of
from enque.core.security import hash_password, new_token, token_hash, verify_password
from enque.teams.service import add_agent_to_teams, require_teams
from enque.workspaces.models import Workspace

INVALID_INVITATION = "The invitation is invalid, expired, revoked or already used"


def _pending(moment: int) -> tuple[ColumnElement[bool], ...]:
    """Neither accepted, revoked nor expired at `moment`."""
    return (
        AgentInvitation.accepted_at.is_(None),
        AgentInvitation.revoked_at.is_(None),
        AgentInvitation.expires_at > moment,
    )


async def invite_agent(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    email: str,
    role: str,
    team_ids: Sequence[str] = (),
) -> AgentInvitation:
    """Invite `email` with `role` and teams; mails the link after commit.

    A new invitation to the same address replaces the pending one (resend).
    """
    settings = runtime_of(session).settings
    token = new_token()
    async with unit(session):
        workspace = await session.get(Workspace, workspace_id)
        if workspace is None:
            raise not_found("Workspace")
        teams = await require_teams(session, workspace_id=workspace_id, team_ids=team_ids)
        member = await session.execute(
            select(AgentWorkspace.id)
            .join(Agent, Agent.id == AgentWorkspace.agent_id)
            .where(
                AgentWorkspace.workspace_id == workspace_id,
                AgentWorkspace.is_active.is_(True),
                func.lower(Agent.email) == email.lower(),
            )
        )
        if member.first() is not None:
            raise conflict(
                "This person is already an agent of the workspace",
                [{"path": "email", "message": "already a member"}],
            )
        moment = now()
        await session.execute(
            update(AgentInvitation)
            .where(
                AgentInvitation.workspace_id == workspace_id,
                func.lower(AgentInvitation.email) == email.lower(),
                *_pending(moment),
            )
            .values(revoked_at=moment)
        )
        invitation = AgentInvitation(
            workspace_id=workspace_id,
            email=email,
            role=role,
            team_ids=teams,
            token_hash=token_hash(token),
            invited_by_id=actor.id if actor.type == "agent" else None,
            expires_at=moment + settings.invitation_ttl_seconds,
        )
        session.add(invitation)
        await session.flush()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="agent.invited",
            subject_type="invitation",
            subject_id=invitation.id,
            after={"email": email, "role": role, "teamIds": teams},
        )
        inviter = await session.get(Agent, actor.id) if actor.type == "agent" else None
        send_after_commit(
            session,
            invitation_mail(
                settings,
                to=email,
                inviter=inviter.display_name if inviter else workspace.name,
                workspace=workspace.name,
                role=role,
                token=token,
            ),
        )
    return invitation


async def list_invitations(
    session: AsyncSession, *, workspace_id: str, page: PageParams
) -> Page[AgentInvitation]:
    """Pending invitations, newest first."""
    stmt = select(AgentInvitation).where(
        AgentInvitation.workspace_id == workspace_id, *_pending(now())
    )
    return await keyset_page(
        session,
        stmt,
        [SortKey(AgentInvitation.id, descending=True)],
        page,
        key_of=lambda inv: (inv.id,),
    )


async def revoke_invitation(
    session: AsyncSession, *, workspace_id: str, actor: Actor, invitation_id: str
) -> None:
    """Withdraw a pending invitation; its link stops working."""
    async with unit(session):
        invitation = (
            await session.execute(
                select(AgentInvitation).where(
                    AgentInvitation.workspace_id == workspace_id,
                    AgentInvitation.id == invitation_id,
                    AgentInvitation.revoked_at.is_(None),
                )
            )
        ).scalar_one_or_none()
        if invitation is None:
            raise not_found("Invitation")
        if invitation.accepted_at is not None:
            raise conflict("The invitation was already accepted")
        invitation.revoked_at = now()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="agent.invitation_revoked",
            subject_type="invitation",
            subject_id=invitation.id,
            before={"email": invitation.email, "role": invitation.role},
        )


async def accept_invitation(
    session: AsyncSession, *, token: str, password: str, display_name: str | None
) -> SignedIn:
    """Join the workspace with the invited role and teams, then sign in there.

    A new email becomes a new agent with `password`; an email that already has an agent
    must give that agent's password.
    """
    invalid = ApiError("BAD_REQUEST", INVALID_INVITATION, [{"path": "token", "message": "invalid"}])
    row = (
        await session.execute(
            select(AgentInvitation, Workspace)
            .join(Workspace, Workspace.id == AgentInvitation.workspace_id)
            .where(AgentInvitation.token_hash == token_hash(token), *_pending(now()))
        )
    ).first()
    agent = await find_agent_by_email(session, row[0].email) if row else None
    await session.commit()  # no database lock is held while hashing
    if row is None or row[1].deleted_at is not None or not row[1].is_active:
        raise invalid
    invitation, workspace = row
    if agent is not None:
        if not agent.is_active:
            raise unauthorized("This account is disabled")
        if not await asyncio.to_thread(verify_password, password, agent.password_hash):
            raise unauthorized("An account with this email exists; give its password")
        password_hash = None
    else:
        if not display_name:
            raise validation_error("displayName", "required for a new account")
        password_hash = await asyncio.to_thread(hash_password, password)
    async with unit(session):
        moment = now()
        claimed = await session.execute(
            update(AgentInvitation)
            .where(AgentInvitation.id == invitation.id, *_pending(moment))
            .values(accepted_at=moment)
            .returning(AgentInvitation.id)
        )
        if claimed.scalar_one_or_none() is None:
            raise invalid
        if agent is None:
            agent = Agent(
                email=invitation.email, display_name=display_name, password_hash=password_hash
            )
            session.add(agent)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise conflict("An account with this email was just created; sign in") from exc
        agent.last_login_at = moment
        actor = Actor("agent", agent.id)
        await join_workspace(
            session, workspace_id=workspace.id, agent=agent, role=invitation.role, actor=actor
        )
        await add_agent_to_teams(
            session, workspace_id=workspace.id, agent_id=agent.id, team_ids=invitation.team_ids
        )
        record(
            session,
            workspace_id=workspace.id,
            actor=actor,
            verb="agent.invitation_accepted",
            subject_type="invitation",
            subject_id=invitation.id,
        )
    return issue_session(session, agent, workspace, invitation.role)
