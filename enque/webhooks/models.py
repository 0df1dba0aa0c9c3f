from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, TenantMixin, TimestampMixin
from enque.core.secrets import encrypted_column

PENDING = text("status = 'pending'")


class Webhook(IdMixin, TimestampMixin, TenantMixin, Base):
    """A subscription: events of the workspace POSTed, signed, to `url`."""

    __tablename__ = "webhooks"

    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]] = mapped_column(default=list)
    secret: Mapped[str | None] = encrypted_column()  # {"secret": …}
    is_active: Mapped[bool] = mapped_column(default=True)
    failure_count: Mapped[int] = mapped_column(default=0)  # failed attempts in a row
    disabled_at: Mapped[int | None] = mapped_column(default=None)
    created_by_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )


class WebhookDelivery(IdMixin, TimestampMixin, TenantMixin, Base):
    """One event for one webhook: its body, attempts and the last outcome."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_log", "webhook_id", "id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        ),
    )

    webhook_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhooks.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")  # succeeded | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[int | None] = mapped_column(default=None)
    status_code: Mapped[int | None] = mapped_column(default=None)
    response_excerpt: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[int | None] = mapped_column(default=None)
    delivered_at: Mapped[int | None] = mapped_column(default=None)
