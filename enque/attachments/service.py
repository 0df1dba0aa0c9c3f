"""Attachments: upload to storage, link to comments, download, delete, sweep orphans."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.attachments import files
from enque.attachments.models import Attachment
from enque.attachments.upload import MultipartUpload
from enque.comments.models import Comment
from enque.core.db import new_id, now, on_commit, unit
from enque.core.errors import ApiError, conflict, not_found, validation_error
from enque.core.runtime import Runtime, runtime_of
from enque.core.storage import Storage, storage_of
from enque.tickets.models import Ticket

log = logging.getLogger(__name__)

ORPHAN_AGE_SECONDS = 24 * 3600
SWEEP_BATCH = 500


def storage_key(workspace_id: str, attachment_id: str, at: float | None = None) -> str:
    """`{workspace_id}/{yyyy}/{mm}/{attachment_id}`: the client's file name never enters it."""
    moment = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    return f"{workspace_id}/{moment:%Y}/{moment:%m}/{attachment_id}"


def metadata(attachment: Attachment) -> dict[str, Any]:
    """The wire shape (also what comments carry in `attachments`)."""
    return {
        "id": attachment.id,
        "fileName": attachment.file_name,
        "contentType": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
        "ticketId": attachment.ticket_id,
        "commentId": attachment.comment_id,
        "isInline": attachment.is_inline,
        "contentId": attachment.content_id,
        "createdAt": attachment.created_at,
    }


async def upload(
    runtime: Runtime,
    *,
    workspace_id: str,
    agent_id: str | None,
    body: AsyncIterable[bytes],
    content_type: str,
) -> Attachment:
    """Stream a multipart upload to storage, then record it. Nothing is written to the
    database while bytes flow, and a refused or broken upload leaves no object behind."""
    storage = storage_of(runtime)
    limit = runtime.settings.max_upload_bytes
    form = MultipartUpload(body, content_type, limit)
    head = await form.head()
    name = files.display_name(form.file_name)
    mime = files.sniff(head)
    if mime in files.REFUSED_TYPES:
        raise ApiError("UNSUPPORTED_MEDIA_TYPE", f"Files of type {mime} are not accepted")
    attachment_id = new_id()
    key = storage_key(workspace_id, attachment_id)
    try:
        await storage.put(
            key,
            form.file_chunks(),
            content_type=mime,
            content_disposition=files.content_disposition(name, files.is_inline(mime)),
        )
    except ApiError:
        raise
    except Exception as exc:
        failure = exc.__cause__ or exc.__context__
        if isinstance(failure, ApiError):  # raised by the parser inside the stream
            raise failure from None
        if form.size > limit:
            from enque.attachments.upload import UploadTooLarge

            raise UploadTooLarge(limit) from None
        log.warning("storage upload failed: %s", exc)
        raise ApiError(
            "INTEGRATION_ERROR", "Storage failed", [{"path": "storage", "message": "unavailable"}]
        ) from None
    if form.size == 0:
        await storage.delete(key)
        raise validation_error("file", "the file is empty")
    ticket_id = form.fields.get("ticketId") or None
    try:
        async with runtime.db.transaction() as session:
            if ticket_id is not None:
                found = await session.scalar(
                    select(Ticket.id).where(
                        Ticket.workspace_id == workspace_id, Ticket.id == ticket_id
                    )
                )
                if found is None:
                    raise validation_error("ticketId", "no such ticket in this workspace")
            attachment = Attachment(
                id=attachment_id,
                workspace_id=workspace_id,
                ticket_id=ticket_id,
                uploaded_by=agent_id,
                file_name=name,
                content_type=mime,
                size=form.size,
                sha256=form.sha256,
                storage_key=key,
            )
            session.add(attachment)
    except BaseException:
        await storage.delete(key)
        raise
    return attachment


async def get_attachment(
    session: AsyncSession, *, workspace_id: str, attachment_id: str
) -> Attachment:
    found = await session.scalar(
        select(Attachment).where(
            Attachment.workspace_id == workspace_id, Attachment.id == attachment_id
        )
    )
    if found is None:
        raise not_found("Attachment")
    return found


def _forget_objects(session: AsyncSession, keys: Sequence[str]) -> None:
    """Delete the objects once the rows' removal has committed."""
    if not keys:
        return
    storage = storage_of(runtime_of(session))

    async def remove() -> None:
        for key in keys:
            try:
                await storage.delete(key)
            except Exception:
                log.exception("could not delete stored file %s", key)

    on_commit(session, remove)


async def delete_attachment(
    session: AsyncSession, *, workspace_id: str, actor: Actor, attachment_id: str, is_manager: bool
) -> None:
    """Remove a file unless it went out with a sent reply. Agents remove their own uploads."""
    async with unit(session):
        attachment = await get_attachment(
            session, workspace_id=workspace_id, attachment_id=attachment_id
        )
        if not is_manager and attachment.uploaded_by != actor.id:
            raise ApiError("FORBIDDEN", "Only the uploader or a manager may delete this file")
        if attachment.comment_id is not None:
            kind, delivery = (
                await session.execute(
                    select(Comment.kind, Comment.delivery).where(
                        Comment.id == attachment.comment_id
                    )
                )
            ).one()
            if kind != "note" and delivery != "pending":
                raise conflict("The file belongs to a message that was sent")
        await session.delete(attachment)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="attachment.deleted",
            subject_type="attachment",
            subject_id=attachment.id,
            before={"fileName": attachment.file_name, "size": attachment.size},
        )
        _forget_objects(session, [attachment.storage_key])


async def purge_ticket_files(
    session: AsyncSession, *, workspace_id: str, ticket_ids: Sequence[str]
) -> int:
    """For a ticket deleted for good: its files' rows go in this transaction, the objects
    after commit."""
    async with unit(session):
        keys = list(
            (
                await session.scalars(
                    delete(Attachment)
                    .where(
                        Attachment.workspace_id == workspace_id,
                        Attachment.ticket_id.in_(list(ticket_ids)),
                    )
                    .returning(Attachment.storage_key)
                )
            ).all()
        )
        _forget_objects(session, keys)
    return len(keys)


async def sweep_orphans(runtime: Runtime, *, older_than: int = ORPHAN_AGE_SECONDS) -> int:
    """Remove uploads never linked to a comment within `older_than` seconds, and files whose
    comment (or ticket) was deleted for good. Returns how many files went."""
    cutoff = now() - older_than
    removed = 0
    while True:
        async with runtime.db.transaction() as session:
            ids = list(
                (
                    await session.scalars(
                        select(Attachment.id)
                        .where(
                            Attachment.comment_id.is_(None),
                            # never linked in time, or its comment was deleted for good
                            or_(Attachment.created_at < cutoff, Attachment.linked_at.is_not(None)),
                        )
                        .order_by(Attachment.created_at)
                        .limit(SWEEP_BATCH)
                    )
                ).all()
            )
            if not ids:
                return removed
            keys = list(
                (
                    await session.scalars(
                        delete(Attachment)
                        .where(Attachment.id.in_(ids), Attachment.comment_id.is_(None))
                        .returning(Attachment.storage_key)
                    )
                ).all()
            )
            _forget_objects(session, keys)
        removed += len(keys)
        if len(ids) < SWEEP_BATCH:
            return removed


class AttachmentLinks:
    """`runtime.services["attachments"]` (the `TicketAttachments` seam of tickets/comments)."""

    async def check(
        self,
        session: AsyncSession,
        *,
        workspace_id: str,
        ticket_id: str,
        attachment_ids: list[str],
    ) -> list[Attachment]:
        """The uploads, locked, if each can go on a new comment of the ticket (422 if not)."""
        rows = list(
            (
                await session.scalars(
                    select(Attachment)
                    .where(
                        Attachment.workspace_id == workspace_id,
                        Attachment.id.in_(attachment_ids),
                    )
                    .with_for_update()
                )
            ).all()
        )
        found = {a.id: a for a in rows}
        for attachment_id in attachment_ids:
            attachment = found.get(attachment_id)
            if attachment is None:
                raise validation_error("attachmentIds", f"no such attachment: {attachment_id}")
            if attachment.comment_id is not None:
                raise validation_error("attachmentIds", f"already attached: {attachment_id}")
            if attachment.ticket_id not in (None, ticket_id):
                raise validation_error(
                    "attachmentIds", f"uploaded for another ticket: {attachment_id}"
                )
        return rows

    async def link(
        self,
        session: AsyncSession,
        *,
        workspace_id: str,
        ticket_id: str,
        comment_id: str,
        attachment_ids: list[str],
    ) -> None:
        rows = await self.check(
            session, workspace_id=workspace_id, ticket_id=ticket_id, attachment_ids=attachment_ids
        )
        stamp = now()
        await session.execute(
            update(Attachment)
            .where(Attachment.workspace_id == workspace_id, Attachment.id.in_(attachment_ids))
            .values(ticket_id=ticket_id, comment_id=comment_id, linked_at=stamp)
            .execution_options(synchronize_session=False)
        )
        for attachment in rows:
            attachment.ticket_id, attachment.comment_id, attachment.linked_at = (
                ticket_id,
                comment_id,
                stamp,
            )

    async def for_comments(
        self, session: AsyncSession, *, workspace_id: str, comment_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        rows = (
            await session.scalars(
                select(Attachment)
                .where(
                    Attachment.workspace_id == workspace_id,
                    Attachment.comment_id.in_(comment_ids),
                )
                .order_by(Attachment.created_at, Attachment.id)
            )
        ).all()
        out: dict[str, list[dict[str, Any]]] = {}
        for attachment in rows:
            out.setdefault(attachment.comment_id or "", []).append(metadata(attachment))
        return out

    async def move(
        self,
        session: AsyncSession,
        *,
        workspace_id: str,
        source_ticket_ids: list[str],
        target_ticket_id: str,
    ) -> None:
        await session.execute(
            update(Attachment)
            .where(
                Attachment.workspace_id == workspace_id,
                Attachment.ticket_id.in_(source_ticket_ids),
            )
            .values(ticket_id=target_ticket_id)
            .execution_options(synchronize_session=False)
        )

    async def purge(
        self, session: AsyncSession, *, workspace_id: str, ticket_ids: list[str]
    ) -> int:
        return await purge_ticket_files(session, workspace_id=workspace_id, ticket_ids=ticket_ids)


def storage(runtime: Runtime) -> Storage:
    return storage_of(runtime)
