from __future__ import annotations

from fastapi import Depends, Query, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import Admin, CurrentAgent, Principal
from enque.core.api import (
    Email,
    Envelope,
    JSONResponse,
    PageParams,
    api_router,
    created,
    no_content,
    ok,
    page_params,
)
from enque.core.deps import current_runtime, get_session
from enque.core.errors import conflict
from enque.core.runtime import Runtime
from enque.mailboxes import microsoft, service, sync
from enque.mailboxes.models import Mailbox
from enque.mailboxes.schemas import (
    ConnectOut,
    ImapMailboxIn,
    MailboxOut,
    MailboxPatch,
    MessageCounts,
    ServerOut,
    SyncOut,
)

router = api_router(prefix="/v1/mailboxes", tags=["mailboxes"])


def mailbox_out(mailbox: Mailbox, counts: dict[str, int] | None = None) -> MailboxOut:
    servers = mailbox.settings or {}
    return MailboxOut(
        id=mailbox.id,
        email=mailbox.email,
        display_name=mailbox.display_name,
        kind=mailbox.kind,
        team_id=mailbox.team_id,
        default_priority=mailbox.default_priority,
        default_category_id=mailbox.default_category_id,
        default_assignee_id=mailbox.default_assignee_id,
        folder=mailbox.folder,
        is_active=mailbox.is_active,
        state=mailbox.state,
        imap=ServerOut(**servers["imap"]) if "imap" in servers else None,
        smtp=ServerOut(**servers["smtp"]) if "smtp" in servers else None,
        last_sync_at=mailbox.last_sync_at,
        last_error=mailbox.last_error,
        error_count=mailbox.error_count,
        message_counts=MessageCounts(**(counts or {})),
        created_at=mailbox.created_at,
        updated_at=mailbox.updated_at,
    )


def _actor(principal: Principal) -> Actor:
    return Actor("agent", principal.agent_id)


@router.get("", response_model=Envelope[list[MailboxOut]])
async def list_mailboxes(
    page: PageParams = Depends(page_params),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    ws = principal.workspace_id
    result = await service.list_mailboxes(session, workspace_id=ws, page=page)
    counts = await service.message_counts(
        session, workspace_id=ws, mailbox_ids=[m.id for m in result.items]
    )
    return ok([mailbox_out(m, counts[m.id]) for m in result.items], result.meta(page.limit))


@router.get("/microsoft/connect", response_model=Envelope[ConnectOut])
async def microsoft_connect(
    mailbox: Email | None = Query(None, description="a shared mailbox to connect instead"),
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    url = await microsoft.start_connect(
        session,
        workspace_id=principal.workspace_id,
        agent_id=principal.agent_id,
        shared_mailbox=mailbox,
    )
    return ok(ConnectOut(url=url))


@router.get("/microsoft/callback", response_class=RedirectResponse, status_code=302)
async def microsoft_callback(
    state: str = Query("", max_length=512),
    code: str | None = Query(None, max_length=4096),
    error: str | None = Query(None, max_length=256),
    runtime: Runtime = Depends(current_runtime),
) -> RedirectResponse:
    """Microsoft's redirect after consent (public: bound to the single-use `state`)."""
    target = await microsoft.finish_connect(runtime, state=state, code=code, error=error)
    return RedirectResponse(target, status_code=302)


@router.get("/{mailbox_id}", response_model=Envelope[MailboxOut])
async def get_mailbox(
    mailbox_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    ws = principal.workspace_id
    mailbox = await service.get_mailbox(session, workspace_id=ws, mailbox_id=mailbox_id)
    counts = await service.message_counts(session, workspace_id=ws, mailbox_ids=[mailbox.id])
    return ok(mailbox_out(mailbox, counts[mailbox.id]))


@router.post("/imap", response_model=Envelope[MailboxOut], status_code=201)
async def create_imap_mailbox(
    body: ImapMailboxIn, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    mailbox, warnings = await service.create_imap_mailbox(
        session,
        workspace_id=principal.workspace_id,
        actor=_actor(principal),
        email=body.email,
        display_name=body.display_name,
        imap_in=body.imap.model_dump(),
        smtp_in=body.smtp.model_dump(),
    )
    return created(mailbox_out(mailbox), {"warnings": warnings})


@router.patch("/{mailbox_id}", response_model=Envelope[MailboxOut])
async def update_mailbox(
    mailbox_id: str,
    body: MailboxPatch,
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    mailbox = await service.update_mailbox(
        session,
        workspace_id=principal.workspace_id,
        actor=_actor(principal),
        mailbox_id=mailbox_id,
        changes=body.model_dump(include=body.model_fields_set),
    )
    counts = await service.message_counts(
        session, workspace_id=principal.workspace_id, mailbox_ids=[mailbox.id]
    )
    return ok(mailbox_out(mailbox, counts[mailbox.id]))


@router.delete("/{mailbox_id}", status_code=204, response_class=Response)
async def delete_mailbox(
    mailbox_id: str, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.delete_mailbox(
        session, workspace_id=principal.workspace_id, actor=_actor(principal), mailbox_id=mailbox_id
    )
    return no_content()


async def _end_transaction(session: AsyncSession) -> None:
    if session.in_transaction():
        await session.commit()  # a sync is network I/O: no transaction stays open across it


@router.post("/{mailbox_id}/sync", response_model=Envelope[SyncOut])
async def sync_mailbox(
    mailbox_id: str,
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
    runtime: Runtime = Depends(current_runtime),
) -> JSONResponse:
    """Sync now: fetch new mail into tickets; answers what the sync did."""
    await service.get_mailbox(session, workspace_id=principal.workspace_id, mailbox_id=mailbox_id)
    await _end_transaction(session)
    try:
        report = await sync.sync_mailbox(runtime, mailbox_id)
    except sync.SyncBusy as exc:
        raise conflict("A sync of this mailbox is running; try again when it ends") from exc
    return ok(SyncOut(**report.as_dict()))


admin_router = api_router(prefix="/v1/admin", tags=["admin"])


@admin_router.post("/sync-emails", response_model=Envelope[list[SyncOut]])
async def sync_emails(
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
    runtime: Runtime = Depends(current_runtime),
) -> JSONResponse:
    """Sync every active mailbox of the workspace now (mailboxes already syncing are skipped)."""
    await _end_transaction(session)
    reports = await sync.sync_all(runtime, workspace_id=principal.workspace_id)
    return ok([SyncOut(**r.as_dict()) for r in reports])


# The module's `router` holds the mailbox routes and the admin one.
router.routes.extend(admin_router.routes)
