from __future__ import annotations

from typing import Literal

from fastapi import Depends, Header, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import CurrentAgent, Manager, Principal
from enque.comments import service as comments
from enque.core.api import (
    MAX_UNIX,
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
from enque.core.errors import ApiError
from enque.customers import service as customers
from enque.tickets import merge, queries, service
from enque.tickets.schemas import (
    ActivityOut,
    BulkIn,
    BulkResult,
    MergeIn,
    Priority,
    Sort,
    Status,
    TicketDetail,
    TicketIn,
    TicketPatch,
    TicketSummary,
)

router = api_router(prefix="/v1", tags=["tickets"])


async def ticket_filters(
    status: list[Status] = Query([]),
    priority: list[Priority] = Query([]),
    assignee_id: str | None = Query(
        None, alias="assigneeId", max_length=64, description="an agent id, `me` or `none`"
    ),
    team_id: str | None = Query(None, alias="teamId", max_length=64),
    category_id: str | None = Query(None, alias="categoryId", max_length=64),
    user_id: str | None = Query(None, alias="userId", max_length=64),
    company_id: str | None = Query(None, alias="companyId", max_length=64),
    mailbox_id: str | None = Query(None, alias="mailboxId", max_length=64),
    tag: str | None = Query(None, max_length=50),
    q: str | None = Query(None, max_length=500),
    created_after: int | None = Query(None, alias="createdAfter", ge=0, le=MAX_UNIX),
    created_before: int | None = Query(None, alias="createdBefore", ge=0, le=MAX_UNIX),
    updated_after: int | None = Query(None, alias="updatedAfter", ge=0, le=MAX_UNIX),
    updated_before: int | None = Query(None, alias="updatedBefore", ge=0, le=MAX_UNIX),
    include_merged: bool = Query(False, alias="includeMerged"),
    breached: bool | None = Query(
        None, description="`true`: an SLA target was missed; `false`: none was (or no SLA)"
    ),
    sort: Sort = Query(
        "-updatedAt",
        description="`slaDue`: SLA target due soonest first, tickets with none due after them",
    ),
    custom_field: list[str] = Query(
        [], alias="cf", max_length=20, description="`key:value`, a custom field equal to value"
    ),
) -> queries.TicketFilters:
    return queries.TicketFilters(
        status=list(status),
        priority=list(priority),
        assignee_id=assignee_id,
        team_id=team_id,
        category_id=category_id,
        user_id=user_id,
        company_id=company_id,
        mailbox_id=mailbox_id,
        tag=" ".join(tag.split()).lower() if tag else None,
        q=q,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
        include_merged=include_merged,
        breached=breached,
        sort=sort,
        custom_fields=queries.custom_field_filters(custom_field),
    )


def actor_of(principal: Principal) -> Actor:
    return Actor("agent", principal.agent_id)


def parse_if_match(value: str | None) -> int | None:
    """`If-Match: "7"` (the `ETag` of the ticket) → 7; `*` or absent → no check."""
    if value is None or value.strip() == "*":
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise ApiError("BAD_REQUEST", "If-Match must be the ticket's ETag (its version)")
    return int(tag)


async def _detail(
    session: AsyncSession, principal: Principal, ticket_id: str, status: Literal[200, 201] = 200
) -> JSONResponse:
    ticket = await service.detail(session, workspace_id=principal.workspace_id, ticket_id=ticket_id)
    response = created(ticket) if status == 201 else ok(ticket)
    response.headers["ETag"] = f'"{ticket["version"]}"'
    return response


@router.get("/tickets", response_model=Envelope[list[TicketSummary]])
async def list_tickets(
    filters: queries.TicketFilters = Depends(ticket_filters),
    page: PageParams = Depends(page_params),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await queries.list_tickets(
        session,
        workspace_id=principal.workspace_id,
        agent_id=principal.agent_id,
        filters=filters,
        page=page,
    )
    return ok(result.items, result.meta(page.limit))


@router.post("/tickets", response_model=Envelope[TicketDetail], status_code=201)
async def create_ticket(
    body: TicketIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    fields = body.model_dump(exclude={"customer", "notify_customer"})
    if body.customer is not None:
        fields.update(customer_email=body.customer.email, customer_name=body.customer.name)
    ticket = await comments.open_ticket(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        notify_customer=body.notify_customer,
        **fields,
    )
    return await _detail(session, principal, ticket.id, 201)


@router.post("/tickets/bulk", response_model=Envelope[list[BulkResult]])
async def bulk_update(
    body: BulkIn, principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    results = await service.bulk_update(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        ticket_ids=body.ids,
        changes=body.set.model_dump(exclude_unset=True),
    )
    return ok(results)


@router.get("/tickets/{ticket_id}", response_model=Envelope[TicketDetail])
async def get_ticket(
    ticket_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    return await _detail(session, principal, ticket_id)


@router.patch("/tickets/{ticket_id}", response_model=Envelope[TicketDetail])
async def update_ticket(
    ticket_id: str,
    body: TicketPatch,
    if_match: str | None = Header(None, alias="If-Match"),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    changes = body.model_dump(exclude_unset=True)
    version = changes.pop("version", None)
    await service.update_ticket(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        ticket_id=ticket_id,
        changes=changes,
        expected_version=version if version is not None else parse_if_match(if_match),
    )
    return await _detail(session, principal, ticket_id)


@router.delete("/tickets/{ticket_id}", status_code=204, response_class=Response)
async def delete_ticket(
    ticket_id: str, principal: Principal = Manager, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.delete_ticket(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        ticket_id=ticket_id,
    )
    return no_content()


@router.post("/tickets/{ticket_id}/restore", response_model=Envelope[TicketDetail])
async def restore_ticket(
    ticket_id: str, principal: Principal = Manager, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    await service.restore_ticket(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        ticket_id=ticket_id,
    )
    return await _detail(session, principal, ticket_id)


@router.post("/tickets/{ticket_id}/merge", response_model=Envelope[TicketDetail])
async def merge_tickets(
    ticket_id: str,
    body: MergeIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    await merge.merge_tickets(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        target_id=ticket_id,
        source_ids=body.source_ticket_ids,
    )
    return await _detail(session, principal, ticket_id)


@router.get("/tickets/{ticket_id}/activities", response_model=Envelope[list[ActivityOut]])
async def list_activities(
    ticket_id: str,
    page: PageParams = Depends(page_params),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    await service.get_ticket(session, workspace_id=principal.workspace_id, ticket_id=ticket_id)
    result = await queries.list_activities(
        session, workspace_id=principal.workspace_id, ticket_id=ticket_id, page=page
    )
    return ok(result.items, result.meta(page.limit))


@router.get("/users/{customer_id}/tickets", response_model=Envelope[list[TicketSummary]])
async def customer_tickets(
    customer_id: str,
    filters: queries.TicketFilters = Depends(ticket_filters),
    page: PageParams = Depends(page_params),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    await customers.get_customer(session, workspace_id=principal.workspace_id, user_id=customer_id)
    filters.user_id = customer_id
    result = await queries.list_tickets(
        session,
        workspace_id=principal.workspace_id,
        agent_id=principal.agent_id,
        filters=filters,
        page=page,
    )
    return ok(result.items, result.meta(page.limit))


@router.get("/companies/{organisation_id}/tickets", response_model=Envelope[list[TicketSummary]])
async def company_tickets(
    organisation_id: str,
    filters: queries.TicketFilters = Depends(ticket_filters),
    page: PageParams = Depends(page_params),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    await customers.get_company(
        session, workspace_id=principal.workspace_id, company_id=organisation_id
    )
    filters.company_id = organisation_id
    result = await queries.list_tickets(
        session,
        workspace_id=principal.workspace_id,
        agent_id=principal.agent_id,
        filters=filters,
        page=page,
    )
    return ok(result.items, result.meta(page.limit))
