"""Attachments: upload to storage, files of received email, link to comments (or to a
ticket's first message), download, delete, sweep orphans.

A file belongs to a comment (`comment_id`), or, linked (`linked_at`) without a comment, to the
first message of its ticket (the ticket body, e.g. the email that opened it). Unlinked files
are uploads waiting for their message; the orphan sweep removes them after a day.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

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
from enque.tickets.seams import FileLink

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


@dataclass(frozen=True)
class ReceivedFile:
    """A file of a received email (an attachment or an inline image), bytes in memory."""

    file_name: str
    data: bytes
    content_id: str | None = None
    inline: bool = False
    content_type: str | None = None  # `sniff_type` of the data, when the caller has it


def sniff_type(data: bytes) -> str:
    """A file's content type from its first bytes (what the sender claims is never trusted)."""
    return files.sniff(data[: files.SNIFF_BYTES])


def is_refused(content_type: str) -> bool:
    """Files of this sniffed type are not accepted (executables)."""
    return content_type in files.REFUSED_TYPES


def content_url(attachment_id: str) -> str:
    """Where the API serves the file (what `cid:` images of a received message point to)."""
    return f"/v1/attachments/{attachment_id}/content"


async def store_received(
    runtime: Runtime, *, workspace_id: str, received: Sequence[ReceivedFile]
) -> list[Attachment]:
    """Store the files of a received message, unlinked, one row per file, in order.

    The rows are committed before the bytes are written, so whatever a crash leaves behind is
    an unlinked row that the orphan sweep removes with its object; a failure while writing
    removes what was written and raises. Linking happens in the caller's transaction.
    """
    if not received:
        return []
    storage = storage_of(runtime)
    moment = time.time()
    rows = []
    for item in received:
        attachment_id = new_id()
        rows.append(
            Attachment(
                id=attachment_id,
                workspace_id=workspace_id,
                file_name=files.display_name(item.file_name),
                content_type=item.content_type or sniff_type(item.data),
                size=len(item.data),
                sha256=hashlib.sha256(item.data).hexdigest(),
                storage_key=storage_key(workspace_id, attachment_id, moment),
                is_inline=item.inline,
                content_id=(item.content_id or None) and (item.content_id or "")[:255],
            )
        )
    async with runtime.db.transaction() as session:
        session.add_all(rows)
    try:
        for row, item in zip(rows, received, strict=True):
            inline = row.is_inline and files.is_inline(row.content_type)
            await storage.put_bytes(
                row.storage_key,
                item.data,
                content_type=row.content_type,
                content_disposition=files.content_disposition(row.file_name, inline),
            )
    except Exception:
        await discard_unlinked(runtime, workspace_id=workspace_id, ids=[r.id for r in rows])
        raise
    return rows


async def discard_unlinked(runtime: Runtime, *, workspace_id: str, ids: Sequence[str]) -> None:
    """Remove files that were stored for a message that will not link them (a duplicate, a
    failure); linked ones are left alone."""
    if not ids:
        return
    async with runtime.db.transaction() as session:
        keys = list(
            (
                await session.scalars(
                    delete(Attachment)
                    .where(
                        Attachment.workspace_id == workspace_id,
                        Attachment.id.in_(list(ids)),
                        Attachment.comment_id.is_(None),
                        Attachment.linked_at.is_(None),
                    )
                    .returning(Attachment.storage_key)
                )
            ).all()
        )
        _forget_objects(session, keys)


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
    """Remove uploads never linked within `older_than` seconds, and files whose ticket was
    deleted for good (its comments go with it), and on local disk what writes cut short left.
    Returns how many files went."""
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
                            or_(
                                # never linked in time
                                and_(
                                    Attachment.linked_at.is_(None), Attachment.created_at < cutoff
                                ),
                                # linked, and its ticket (with its comments) deleted for good
                                and_(
                                    Attachment.linked_at.is_not(None),
                                    Attachment.ticket_id.is_(None),
                                ),
                            ),
                        )
                        .order_by(Attachment.created_at)
                        .limit(SWEEP_BATCH)
                    )
                ).all()
            )
            if not ids:
                break
            keys = list(
                (
                    await session.scalars(
                        delete(Attachment)
                        .where(
                            Attachment.id.in_(ids),
                            Attachment.comment_id.is_(None),
                            or_(Attachment.linked_at.is_(None), Attachment.ticket_id.is_(None)),
                        )
                        .returning(Attachment.storage_key)
                    )
                ).all()
            )
            _forget_objects(session, keys)
        removed += len(keys)
        if len(ids) < SWEEP_BATCH:
            break
    return removed + await storage_of(runtime).remove_partial_writes(older_than)


# built once: each linked file is one row of its executemany (a ticket and comment each)
_LINK = (
    update(Attachment.__table__)  # type: ignore[arg-type]
    .where(
        Attachment.__table__.c.workspace_id == bindparam("link_workspace"),
        Attachment.__table__.c.id == bindparam("link_id"),
    )
    .values(
        ticket_id=bindparam("link_ticket"),
        comment_id=bindparam("link_comment"),
        linked_at=bindparam("link_at"),
        updated_at=bindparam("link_at"),
    )
)


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
        return await self._checked(
            session, workspace_id, [FileLink(ticket_id, None, attachment_ids)]
        )

    async def _checked(
        self, session: AsyncSession, workspace_id: str, links: Sequence[FileLink]
    ) -> list[Attachment]:
        """The uploads of every link, locked, if each can go where its link says (422 if not)."""
        wanted = [i for link in links for i in link.attachment_ids]
        rows = list(
            (
                await session.scalars(
                    select(Attachment)
                    .where(Attachment.workspace_id == workspace_id, Attachment.id.in_(wanted))
                    .with_for_update()
                )
            ).all()
        )
        found = {a.id: a for a in rows}
        for link in links:
            for attachment_id in link.attachment_ids:
                attachment = found.get(attachment_id)
                if attachment is None:
                    raise validation_error("attachmentIds", f"no such attachment: {attachment_id}")
                if attachment.comment_id is not None:
                    raise validation_error("attachmentIds", f"already attached: {attachment_id}")
                if attachment.ticket_id not in (None, link.ticket_id):
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
        comment_id: str | None,
        attachment_ids: list[str],
    ) -> None:
        """Attach uploads to a comment, or with `comment_id=None` to the ticket's first message."""
        link = FileLink(ticket_id, comment_id, attachment_ids)
        await self.link_many(session, workspace_id=workspace_id, links=[link])

    async def link_many(
        self, session: AsyncSession, *, workspace_id: str, links: Sequence[FileLink]
    ) -> None:
        """`link` for several comments or first messages: one locked read, one UPDATE."""
        links = [link for link in links if link.attachment_ids]
        if not links:
            return
        rows = {a.id: a for a in await self._checked(session, workspace_id, links)}
        stamp = now()
        connection = await session.connection()
        await connection.execute(
            _LINK,
            [
                {
                    "link_workspace": workspace_id,
                    "link_id": attachment_id,
                    "link_ticket": link.ticket_id,
                    "link_comment": link.comment_id,
                    "link_at": stamp,
                }
                for link in links
                for attachment_id in link.attachment_ids
            ],
        )
        for link in links:  # the loaded rows as written, without a second UPDATE each
            for attachment_id in link.attachment_ids:
                for key, value in (
                    ("ticket_id", link.ticket_id),
                    ("comment_id", link.comment_id),
                    ("linked_at", stamp),
                    ("updated_at", stamp),
                ):
                    set_committed_value(rows[attachment_id], key, value)

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

    async def for_bodies(
        self, session: AsyncSession, *, workspace_id: str, ticket_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Metadata of the files of these tickets' first messages, by ticket id (one query)."""
        rows = (
            await session.scalars(
                select(Attachment)
                .where(
                    Attachment.workspace_id == workspace_id,
                    Attachment.ticket_id.in_(ticket_ids),
                    Attachment.comment_id.is_(None),
                    Attachment.linked_at.is_not(None),
                )
                .order_by(Attachment.created_at, Attachment.id)
            )
        ).all()
        out: dict[str, list[dict[str, Any]]] = {}
        for attachment in rows:
            out.setdefault(attachment.ticket_id or "", []).append(metadata(attachment))
        return out

    async def move(
        self,
        session: AsyncSession,
        *,
        workspace_id: str,
        source_ticket_ids: list[str],
        target_ticket_id: str,
        body_comments: Mapping[str, str] | None = None,
    ) -> None:
        """Files of merged tickets go to the target; those of a source's first message go to
        the comment it became (`body_comments`: source ticket id → comment id)."""
        for source_id, comment_id in (body_comments or {}).items():
            await session.execute(
                update(Attachment)
                .where(
                    Attachment.workspace_id == workspace_id,
                    Attachment.ticket_id == source_id,
                    Attachment.comment_id.is_(None),
                    Attachment.linked_at.is_not(None),
                )
                .values(comment_id=comment_id)
                .execution_options(synchronize_session=False)
            )
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
