from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.attachments import files, service
from enque.auth.deps import CurrentAgent, Principal
from enque.core.api import ApiModel, Envelope, JSONResponse, api_router, created, no_content, ok
from enque.core.deps import current_runtime, get_session
from enque.core.errors import ApiError, not_found
from enque.core.runtime import Runtime
from enque.core.storage import StorageNotFound, storage_of

router = api_router(prefix="/v1/attachments", tags=["attachments"])

SIGNED_URL_SECONDS = 300


class AttachmentOut(ApiModel):
    id: str
    file_name: str
    content_type: str
    size: int
    sha256: str
    ticket_id: str | None
    comment_id: str | None
    is_inline: bool
    content_id: str | None
    created_at: int


@router.post(
    "",
    response_model=Envelope[AttachmentOut],
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "ticketId": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
async def upload_attachment(
    request: Request,
    principal: Principal = CurrentAgent,
    runtime: Runtime = Depends(current_runtime),
) -> JSONResponse:
    attachment = await service.upload(
        runtime,
        workspace_id=principal.workspace_id,
        agent_id=principal.agent_id,
        body=request.stream(),
        content_type=request.headers.get("content-type", ""),
    )
    return created(service.metadata(attachment))


@router.get("/{attachment_id}", response_model=Envelope[AttachmentOut])
async def get_attachment(
    attachment_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    attachment = await service.get_attachment(
        session, workspace_id=principal.workspace_id, attachment_id=attachment_id
    )
    return ok(service.metadata(attachment))


@router.get(
    "/{attachment_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {}, 302: {}, 416: {}},
)
async def download_attachment(
    attachment_id: str,
    request: Request,
    principal: Principal = CurrentAgent,
    runtime: Runtime = Depends(current_runtime),
) -> Response:
    async with runtime.db.session(write=False) as session:
        attachment = await service.get_attachment(
            session, workspace_id=principal.workspace_id, attachment_id=attachment_id
        )
    storage = storage_of(runtime)
    inline = files.is_inline(attachment.content_type)
    headers: dict[str, Any] = {
        "Content-Disposition": files.content_disposition(attachment.file_name, inline),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=0, must-revalidate",
        "Accept-Ranges": "bytes",
        "ETag": f'"{attachment.sha256}"',
    }
    if storage.signs_urls:
        from datetime import timedelta

        url = await storage.signed_url(
            attachment.storage_key, timedelta(seconds=SIGNED_URL_SECONDS)
        )
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    try:
        wanted = files.parse_range(request.headers.get("range"), attachment.size)
    except files.RangeNotSatisfiable:
        return Response(
            status_code=416, headers={"Content-Range": f"bytes */{attachment.size}", **headers}
        )
    try:
        if wanted is None:
            download = await storage.open(attachment.storage_key)
        else:
            download = await storage.open(attachment.storage_key, *wanted)
    except StorageNotFound:
        raise not_found("Attachment content") from None
    except Exception:
        raise ApiError(
            "INTEGRATION_ERROR", "Storage failed", [{"path": "storage", "message": "unavailable"}]
        ) from None
    headers["Content-Length"] = str(download.end - download.start)
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {download.start}-{download.end - 1}/{download.size}"
    return StreamingResponse(
        download.chunks, status_code=status, media_type=attachment.content_type, headers=headers
    )


@router.delete("/{attachment_id}", status_code=204, response_class=Response)
async def delete_attachment(
    attachment_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> Response:
    await service.delete_attachment(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        attachment_id=attachment_id,
        is_manager=principal.is_manager,
    )
    return no_content()
