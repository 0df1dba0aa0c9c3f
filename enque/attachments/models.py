from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, TimestampMixin


class Attachment(IdMixin, TimestampMixin, Base):
    """An uploaded or received file. Its bytes live in storage under `storage_key`
    (`{workspace_id}/{yyyy}/{mm}/{id}`); `file_name` is only ever a display name.

    Linked (`linked_at` set) to a comment, or with `comment_id` null to the first message of
    its ticket (the ticket body). Unlinked uploads older than a day are swept, and so are
    files whose ticket was deleted for good (`ticket_id` and `comment_id` null again)."""

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_workspace_comment", "workspace_id", "comment_id"),
        Index("ix_attachments_workspace_ticket", "workspace_id", "ticket_id"),
        Index("ix_attachments_unlinked", "comment_id", "created_at"),
    )

    workspace_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    ticket_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("tickets.id", ondelete="SET NULL"), default=None
    )
    comment_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("comments.id", ondelete="SET NULL"), default=None
    )
    uploaded_by: Mapped[str | None] = mapped_column(String(36), default=None)
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    is_inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str | None] = mapped_column(String(255), default=None)
    linked_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
