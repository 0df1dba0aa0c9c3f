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
from enque.customers import service
from enque.customers.schemas import (
    CompanyIn,
    CompanyOut,
    CompanyPatch,
    CustomerIn,
    CustomerOut,
    CustomerPatch,
)

router = api_router(prefix="/v1", tags=["customers"])


def actor_of(principal: Principal) -> Actor:
    return Actor("agent", principal.agent_id)


@router.get("/users", response_model=Envelope[list[CustomerOut]])
async def list_users(
    q: str | None = Query(None, max_length=200),
    company_id: str | None = Query(None, alias="companyId", max_length=64),
    page: PageParams = Depends(page_params),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_customers(
        session, workspace_id=principal.workspace_id, page=page, q=q, company_id=company_id
    )
    return ok(result.items, result.meta(page.limit))


@router.post("/users", response_model=Envelope[CustomerOut], status_code=201)
async def create_user(
    body: CustomerIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    user = await service.create_customer(
        session, workspace_id=principal.workspace_id, actor=actor_of(principal), **body.model_dump()
    )
    return created(
        await service.customer_view(session, workspace_id=principal.workspace_id, user_id=user.id)
    )


@router.get("/users/{user_id}", response_model=Envelope[CustomerOut])
async def get_user(
    user_id: str, principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    return ok(
        await service.customer_view(session, workspace_id=principal.workspace_id, user_id=user_id)
    )


@router.patch("/users/{user_id}", response_model=Envelope[CustomerOut])
async def update_user(
    user_id: str,
    body: CustomerPatch,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    await service.update_customer(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        user_id=user_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return ok(
        await service.customer_view(session, workspace_id=principal.workspace_id, user_id=user_id)
    )


@router.delete("/users/{user_id}", status_code=204, response_class=Response)
async def delete_user(
    user_id: str, principal: Principal = Manager, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.delete_customer(
        session, workspace_id=principal.workspace_id, actor=actor_of(principal), user_id=user_id
    )
    return no_content()


@router.get("/companies", response_model=Envelope[list[CompanyOut]])
async def list_companies(
    q: str | None = Query(None, max_length=200),
    page: PageParams = Depends(page_params),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_companies(
        session, workspace_id=principal.workspace_id, page=page, q=q
    )
    return ok(result.items, result.meta(page.limit))


@router.post("/companies", response_model=Envelope[CompanyOut], status_code=201)
async def create_company(
    body: CompanyIn, principal: Principal = Manager, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    company = await service.create_company(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        fields=body.model_dump(),
    )
    return created(
        await service.company_view(
            session, workspace_id=principal.workspace_id, company_id=company.id
        )
    )


@router.get("/companies/{company_id}", response_model=Envelope[CompanyOut])
async def get_company(
    company_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    return ok(
        await service.company_view(
            session, workspace_id=principal.workspace_id, company_id=company_id
        )
    )


@router.patch("/companies/{company_id}", response_model=Envelope[CompanyOut])
async def update_company(
    company_id: str,
    body: CompanyPatch,
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    await service.update_company(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        company_id=company_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return ok(
        await service.company_view(
            session, workspace_id=principal.workspace_id, company_id=company_id
        )
    )


@router.delete("/companies/{company_id}", status_code=204, response_class=Response)
async def delete_company(
    company_id: str, principal: Principal = Manager, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.delete_company(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        company_id=company_id,
    )
    return no_content()
