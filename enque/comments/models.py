from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, JSONType, TimestampMixin

KINDS = ("reply", "note", "customer", "system")
DELIVERY_STATES = ("pending", "sent", "failed")


class Comment(IdMixin, TimestampMixin, Base):
    """One message in a ticket's thread: a public reply, an internal note, a customer message
    or a system line. Replies and customer messages are immutable; notes can be edited."""

    __tablename__ = "comments"
    __table_args__ = (
        Index("ix_comments_workspace_ticket", "workspace_id", "ticket_id", "created_at", "id"),
        # replies still to send: small, read by the resend job and the metrics queue depth
        Index(
            "ix_comments_pending_delivery",
            "delivery",
            postgresql_where=text("delivery = 'pending'"),
            sqlite_where=text("delivery = 'pending'"),
        ),
    )

    workspace_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    ticket_id: Mapped[str] = mapped_column(String(36), ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    author_type: Mapped[str] = mapped_column(String(16))  # agent, user, system, automation
    author_id: Mapped[str | None] = mapped_column(String(36), default=None)
    content: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    original_html: Mapped[str | None] = mapped_column(Text, default=None)
    to: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    cc: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    bcc: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    mentions: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    message_id: Mapped[str | None] = mapped_column(String(998), default=None)
    in_reply_to: Mapped[str | None] = mapped_column(String(998), default=None)
    delivery: Mapped[str | None] = mapped_column(String(16), default=None)
    delivery_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivery_attempts: Mapped[int] = mapped_column(default=0)
    deleted_at: Mapped[int | None] = mapped_column(default=None)
