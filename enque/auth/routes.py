from __future__ import annotations

from fastapi import Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from enque.agents import invitations
from enque.agents.schemas import AcceptInvitationIn, AgentOut
from enque.auth import microsoft, service
from enque.auth.deps import CurrentAgent, Principal, limit_public
from enque.auth.schemas import (
    AuthOut,
    ForgotPasswordIn,
    LoginIn,
    MeOut,
    RegisterIn,
    ResetPasswordIn,
    SignInUrlOut,
    SwitchWorkspaceIn,
)
from enque.core.api import Envelope, JSONResponse, api_router, created, no_content, ok
from enque.core.deps import current_runtime, get_runtime, get_session
from enque.core.runtime import Runtime
from enque.workspaces.schemas import WorkspaceOut

router = api_router(prefix="/v1/auth", tags=["auth"])


def auth_out(result: service.SignedIn) -> AuthOut:
    agent = AgentOut.model_validate(result.agent).model_copy(update={"role": result.role})
    return AuthOut(
        token=result.token,
        expires_at=result.expires_at,
        agent=agent,
        workspace=WorkspaceOut.model_validate(result.workspace),
    )


@router.post("/register", response_model=Envelope[AuthOut], status_code=201)
async def register(
    body: RegisterIn, request: Request, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    await limit_public(request, body.email)
    result = await service.register(session, **body.model_dump())
    return created(auth_out(result))


@router.post("/login", response_model=Envelope[AuthOut])
async def login(
    body: LoginIn, request: Request, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    await limit_public(request, body.email)
    result = await service.login(
        session, email=body.email, password=body.password, workspace_id=body.workspace_id
    )
    return ok(auth_out(result))


@router.get("/microsoft", response_model=Envelope[SignInUrlOut])
async def microsoft_sign_in(
    request: Request,
    workspace_id: str | None = Query(None, alias="workspaceId", max_length=64),
    runtime: Runtime = Depends(current_runtime),
) -> JSONResponse:
    """The Microsoft sign-in URL to send the browser to (public)."""
    await limit_public(request, "microsoft")
    return ok(SignInUrlOut(url=await microsoft.start(runtime, workspace_id=workspace_id)))


@router.get("/microsoft/callback", response_class=RedirectResponse, status_code=302)
async def microsoft_callback(
    request: Request,
    state: str = Query("", max_length=512),
    code: str | None = Query(None, max_length=4096),
    error: str | None = Query(None, max_length=256),
    runtime: Runtime = Depends(current_runtime),
) -> RedirectResponse:
    """Microsoft's redirect (public: bound to the single-use `state`); back to PUBLIC_URL."""
    await limit_public(request, "microsoft")
    target = await microsoft.finish(runtime, state=state, code=code, error=error)
    return RedirectResponse(target, status_code=302)


@router.post("/logout", status_code=204, response_class=Response)
async def logout(
    principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.logout(session, principal)
    return no_content()


@router.get("/me", response_model=Envelope[MeOut])
async def me(request: Request, principal: Principal = CurrentAgent) -> JSONResponse:
    if principal.context is not None:  # already loaded (and cached) by the token check
        context = principal.context
        return ok({"agent": context.agent, "workspace": context.workspace, "role": context.role})
    async with get_runtime(request).db.session(write=False) as session:
        agent, workspace, role = await service.me(session, principal)
    out = MeOut(
        agent=AgentOut.model_validate(agent).model_copy(update={"role": role}),
        workspace=WorkspaceOut.model_validate(workspace),
        role=role,
    )
    return ok(out)


@router.post("/switch-workspace", response_model=Envelope[AuthOut])
async def switch_workspace(
    body: SwitchWorkspaceIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.switch_workspace(session, principal, body.workspace_id)
    return ok(auth_out(result))


@router.post("/password/forgot", response_model=Envelope[None], status_code=202)
async def forgot_password(
    body: ForgotPasswordIn, request: Request, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    """Always 202, whether or not the email belongs to an agent."""
    await limit_public(request, body.email)
    await service.request_password_reset(session, email=body.email)
    return ok(None, status=202)


@router.post("/password/reset", status_code=204, response_class=Response)
async def reset_password(
    body: ResetPasswordIn, request: Request, session: AsyncSession = Depends(get_session)
) -> Response:
    await limit_public(request, "password-reset")
    await service.reset_password(session, token=body.token, password=body.password)
    return no_content()


@router.post("/invitations/accept", response_model=Envelope[AuthOut])
async def accept_invitation(
    body: AcceptInvitationIn, request: Request, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    await limit_public(request, "invitation")
    result = await invitations.accept_invitation(
        session, token=body.token, password=body.password, display_name=body.display_name
    )
    return ok(auth_out(result))
