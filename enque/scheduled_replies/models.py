from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, JSONType, TenantMixin, TimestampMixin

STATUSES = ("pending", "sending", "sent", "cancelled", "failed")


class ScheduledReply(IdMixin, TimestampMixin, TenantMixin, Base):
    """A public reply to be sent at `send_at` through the same path as an immediate reply.

    `pending` → (claimed by one sender: `sending`, `claim_token`, lease until `claimed_until`)
    → `sent` (with `sent_comment_id`), or back to `pending` at `next_attempt_at` after a
    failure, or `failed` with `last_error`. `cancelled` by a person while still `pending`.
    """

    __tablename__ = "scheduled_replies"
    __table_args__ = (
        Index("ix_scheduled_replies_ticket", "workspace_id", "ticket_id", "send_at", "id"),
        Index("ix_scheduled_replies_due", "status", "next_attempt_at"),
    )

    ticket_id: Mapped[str] = mapped_column(String(36), ForeignKey("tickets.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    content: Mapped[str] = mapped_column(Text)
    to: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    cc: Mapped[list[Any] | None] = mapped_column(JSONType, default=None)
    bcc: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    attachment_ids: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    ticket_status: Mapped[str | None] = mapped_column(String(16), default=None)
    send_at: Mapped[int] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")
    next_attempt_at: Mapped[int] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    claim_token: Mapped[str | None] = mapped_column(String(36), default=None)
    claimed_until: Mapped[int | None] = mapped_column(default=None)
    sent_comment_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("comments.id", ondelete="SET NULL"), default=None
    )
    sent_at: Mapped[int | None] = mapped_column(default=None)
    cancelled_at: Mapped[int | None] = mapped_column(default=None)
