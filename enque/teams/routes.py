from __future__ import annotations

from fastapi import Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import CurrentAgent, Manager, Principal
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
from enque.teams import service
from enque.teams.schemas import TeamIn, TeamMembersIn, TeamOut, TeamPatchIn

router = api_router(prefix="/v1/teams", tags=["teams"])


def team_out(view: service.TeamView) -> TeamOut:
    team = view.team
    return TeamOut(
        id=team.id,
        name=team.name,
        description=team.description,
        icon=team.icon,
        manager_id=team.manager_id,
        member_ids=view.member_ids,
        created_at=team.created_at,
        updated_at=team.updated_at,
    )


def actor(principal: Principal) -> Actor:
    return Actor("agent", principal.agent_id)


@router.get("", response_model=Envelope[list[TeamOut]])
async def list_teams(
    page: PageParams = Depends(page_params),
    q: str | None = Query(None, max_length=200),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_teams(session, workspace_id=principal.workspace_id, page=page, q=q)
    return ok([team_out(v) for v in result.items], result.meta(page.limit))


@router.post("", response_model=Envelope[TeamOut], status_code=201)
async def create_team(
    body: TeamIn, principal: Principal = Manager, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    view = await service.create_team(
        session,
        workspace_id=principal.workspace_id,
        actor=actor(principal),
        **body.model_dump(),
    )
    return created(team_out(view))


@router.get("/{team_id}", response_model=Envelope[TeamOut])
async def get_team(
    team_id: str, principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    view = await service.view_team(session, workspace_id=principal.workspace_id, team_id=team_id)
    return ok(team_out(view))


@router.patch("/{team_id}", response_model=Envelope[TeamOut])
async def update_team(
    team_id: str,
    body: TeamPatchIn,
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    view = await service.update_team(
        session,
        workspace_id=principal.workspace_id,
        actor=actor(principal),
        team_id=team_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return ok(team_out(view))


@router.delete("/{team_id}", status_code=204, response_class=Response)
async def delete_team(
    team_id: str, principal: Principal = Manager, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.delete_team(
        session, workspace_id=principal.workspace_id, actor=actor(principal), team_id=team_id
    )
    return no_content()


@router.put("/{team_id}/members", response_model=Envelope[TeamOut])
async def set_members(
    team_id: str,
    body: TeamMembersIn,
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    view = await service.set_members(
        session,
        workspace_id=principal.workspace_id,
        actor=actor(principal),
        team_id=team_id,
        agent_ids=body.agent_ids,
    )
    return ok(team_out(view))
