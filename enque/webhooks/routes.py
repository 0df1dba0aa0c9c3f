from __future__ import annotations

from fastapi import Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import Admin, Principal
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
from enque.webhooks import service
from enque.webhooks.models import Webhook
from enque.webhooks.schemas import (
    DeliveryOut,
    WebhookCreatedOut,
    WebhookIn,
    WebhookOut,
    WebhookPatchIn,
)

router = api_router(prefix="/v1/webhooks", tags=["webhooks"])


def webhook_out(webhook: Webhook) -> WebhookOut:
    return WebhookOut.model_validate(webhook, from_attributes=True)


def actor(principal: Principal) -> Actor:
    return Actor("agent", principal.agent_id)


@router.get("", response_model=Envelope[list[WebhookOut]])
async def list_webhooks(
    page: PageParams = Depends(page_params),
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_webhooks(session, workspace_id=principal.workspace_id, page=page)
    return ok([webhook_out(w) for w in result.items], result.meta(page.limit))


@router.post("", response_model=Envelope[WebhookCreatedOut], status_code=201)
async def create_webhook(
    body: WebhookIn, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    webhook, secret = await service.create_webhook(
        session, workspace_id=principal.workspace_id, actor=actor(principal), **body.model_dump()
    )
    return created(WebhookCreatedOut(**webhook_out(webhook).model_dump(), secret=secret))


@router.get("/{webhook_id}", response_model=Envelope[WebhookOut])
async def get_webhook(
    webhook_id: str, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    webhook = await service.get_webhook(
        session, workspace_id=principal.workspace_id, webhook_id=webhook_id
    )
    return ok(webhook_out(webhook))


@router.patch("/{webhook_id}", response_model=Envelope[WebhookOut])
async def update_webhook(
    webhook_id: str,
    body: WebhookPatchIn,
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    webhook = await service.update_webhook(
        session,
        workspace_id=principal.workspace_id,
        actor=actor(principal),
        webhook_id=webhook_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return ok(webhook_out(webhook))


@router.delete("/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(
    webhook_id: str, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.delete_webhook(
        session, workspace_id=principal.workspace_id, actor=actor(principal), webhook_id=webhook_id
    )
    return no_content()


@router.get("/{webhook_id}/deliveries", response_model=Envelope[list[DeliveryOut]])
async def list_deliveries(
    webhook_id: str,
    page: PageParams = Depends(page_params),
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_deliveries(
        session, workspace_id=principal.workspace_id, webhook_id=webhook_id, page=page
    )
    items = [DeliveryOut.model_validate(d, from_attributes=True) for d in result.items]
    return ok(items, result.meta(page.limit))
