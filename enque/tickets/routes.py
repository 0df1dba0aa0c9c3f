from __future__ import annotations

from typing import Literal

from fastapi import Depends, Header, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import CurrentAgent, Manager, Principal
from enque.comments import service as comments
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
from enque.core.errors import ApiError
from enque.core.query import query_of, query_parameters
from enque.customers import service as customers
from enque.tickets import merge, queries, service
from enque.tickets.schemas import (
    ActivityOut,
    BulkIn,
    BulkResult,
    MergeIn,
    TicketDetail,
    TicketIn,
    TicketListQuery,
    TicketPatch,
    TicketSummary,
)

router = api_router(prefix="/v1", tags=["tickets"])
# the inbox's query string, documented once for the three lists that take it
LIST_QUERY_DOCS = {"parameters": query_parameters(TicketListQuery)}


def filters_of(query: TicketListQuery) -> queries.TicketFilters:
    return queries.TicketFilters(
        status=list(query.status),
        priority=list(query.priority),
        assignee_id=query.assignee_id,
        team_id=query.team_id,
        category_id=query.category_id,
        user_id=query.user_id,
        company_id=query.company_id,
        mailbox_id=query.mailbox_id,
        tag=" ".join(query.tag.split()).lower() if query.tag else None,
        q=query.q,
        created_after=query.created_after,
        created_before=query.created_before,
        updated_after=query.updated_after,
        updated_before=query.updated_before,
        include_merged=query.include_merged,
        breached=query.breached,
        sort=query.sort,
        custom_fields=queries.custom_field_filters(list(query.custom_field)),
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


@router.get(
    "/tickets",
    response_model=Envelope[list[TicketSummary]],
    openapi_extra=LIST_QUERY_DOCS,
)
async def list_tickets(
    query: TicketListQuery = Depends(query_of(TicketListQuery)),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await queries.list_tickets(
        session,
        workspace_id=principal.workspace_id,
        agent_id=principal.agent_id,
        filters=filters_of(query),
        page=query.page,
    )
    return ok(result.items, result.meta(query.limit))


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
        notify_customer=body.notify_customer,
        ticket=service.NewTicket(actor=actor_of(principal), **fields),
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


@router.get(
    "/users/{customer_id}/tickets",
    response_model=Envelope[list[TicketSummary]],
    openapi_extra=LIST_QUERY_DOCS,
)
async def customer_tickets(
    customer_id: str,
    query: TicketListQuery = Depends(query_of(TicketListQuery)),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    await customers.get_customer(session, workspace_id=principal.workspace_id, user_id=customer_id)
    filters = filters_of(query)
    filters.user_id = customer_id
    result = await queries.list_tickets(
        session,
        workspace_id=principal.workspace_id,
        agent_id=principal.agent_id,
        filters=filters,
        page=query.page,
    )
    return ok(result.items, result.meta(query.limit))


@router.get(
    "/companies/{organisation_id}/tickets",
    response_model=Envelope[list[TicketSummary]],
    openapi_extra=LIST_QUERY_DOCS,
)
async def company_tickets(
    organisation_id: str,
    query: TicketListQuery = Depends(query_of(TicketListQuery)),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    await customers.get_company(
        session, workspace_id=principal.workspace_id, company_id=organisation_id
    )
    filters = filters_of(query)
    filters.company_id = organisation_id
    result = await queries.list_tickets(
        session,
        workspace_id=principal.workspace_id,
        agent_id=principal.agent_id,
        filters=filters,
        page=query.page,
    )
    return ok(result.items, result.meta(query.limit))
