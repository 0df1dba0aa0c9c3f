from __future__ import annotations

from typing import TypeVar

from fastapi import Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.agents import invitations, service
from enque.agents.schemas import (
    AgentOut,
    AgentPatchIn,
    InvitationIn,
    InvitationOut,
    ProfileOut,
    ProfilePatchIn,
    ProfileUpdateOut,
    Role,
)
from enque.auth.deps import Admin, CurrentAgent, Principal
from enque.core.api import (
    Envelope,
    JSONResponse,
    PageParams,
    api_router,
    created,
    no_content,
    ok,
    page_params,
)
from enque.core.deps import get_session
from enque.notifications import service as notification_settings

router = api_router(tags=["agents"])

Profile = TypeVar("Profile", bound=ProfileOut)


def agent_out(member: service.Member) -> AgentOut:
    return AgentOut.model_validate(member.agent).model_copy(
        update={"role": member.role, "is_active": member.is_active}
    )


def profile_out(member: service.Member) -> ProfileOut:
    return ProfileOut.model_validate(member.agent).model_copy(
        update={"role": member.role, "is_active": member.is_active}
    )


# Invitations come first: `/v1/agents/invitations` is not an agent id.


@router.post("/v1/agents/invitations", response_model=Envelope[InvitationOut], status_code=201)
async def invite_agent(
    body: InvitationIn, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    invitation = await invitations.invite_agent(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        email=body.email,
        role=body.role,
        team_ids=body.team_ids,
    )
    return created(InvitationOut.model_validate(invitation))


@router.get("/v1/agents/invitations", response_model=Envelope[list[InvitationOut]])
async def list_invitations(
    page: PageParams = Depends(page_params),
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await invitations.list_invitations(
        session, workspace_id=principal.workspace_id, page=page
    )
    items = [InvitationOut.model_validate(i) for i in result.items]
    return ok(items, result.meta(page.limit))


@router.delete("/v1/agents/invitations/{invitation_id}", status_code=204, response_class=Response)
async def revoke_invitation(
    invitation_id: str, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> Response:
    await invitations.revoke_invitation(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        invitation_id=invitation_id,
    )
    return no_content()


@router.get("/v1/agents", response_model=Envelope[list[AgentOut]])
async def list_agents(
    page: PageParams = Depends(page_params),
    q: str | None = Query(None, max_length=200),
    role: Role | None = Query(None),
    is_active: bool | None = Query(None, alias="isActive"),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_agents(
        session,
        workspace_id=principal.workspace_id,
        page=page,
        q=q,
        role=role,
        is_active=is_active,
    )
    return ok([agent_out(m) for m in result.items], result.meta(page.limit))


@router.get("/v1/agents/{agent_id}", response_model=Envelope[AgentOut])
async def get_agent(
    agent_id: str, principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    member = await service.get_member(
        session, workspace_id=principal.workspace_id, agent_id=agent_id
    )
    return ok(agent_out(member))


@router.patch("/v1/agents/{agent_id}", response_model=Envelope[AgentOut])
async def update_agent(
    agent_id: str,
    body: AgentPatchIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    member = await service.update_agent(
        session,
        workspace_id=principal.workspace_id,
        by=principal,
        agent_id=agent_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return ok(agent_out(member))


@router.delete("/v1/agents/{agent_id}", status_code=204, response_class=Response)
async def deactivate_agent(
    agent_id: str, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.deactivate_agent(
        session, workspace_id=principal.workspace_id, by=principal, agent_id=agent_id
    )
    return no_content()


@router.get("/v1/profile", response_model=Envelope[ProfileOut])
async def get_profile(
    principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    member = await service.get_profile(session, principal=principal)
    return ok(await _with_notifications(session, principal, profile_out(member)))


@router.patch("/v1/profile", response_model=Envelope[ProfileUpdateOut])
async def update_profile(
    body: ProfilePatchIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    member, signed_in = await service.update_profile(
        session,
        principal=principal,
        changes=body.model_dump(exclude_unset=True, exclude={"notifications"}),
        notifications=body.notifications,
    )
    out = ProfileUpdateOut(
        **profile_out(member).model_dump(),
        token=signed_in.token if signed_in else None,
        expires_at=signed_in.expires_at if signed_in else None,
    )
    return ok(await _with_notifications(session, principal, out))


async def _with_notifications(
    session: AsyncSession, principal: Principal, profile: Profile
) -> Profile:
    """The profile with the caller's notification choices (the same as
    `/v1/notifications/settings`)."""
    settings = await notification_settings.get_settings(
        session, workspace_id=principal.workspace_id, agent_id=principal.agent_id
    )
    return profile.model_copy(update={"notifications": settings})
