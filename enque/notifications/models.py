"""The in-app feed of each agent and what each agent wants to be told, and how."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, JSONType, TenantMixin, TimestampMixin

# what an agent can be told about (the `automation` kind comes from a rule's notify action)
EVENTS = (
    "ticket.assigned",
    "ticket.created",
    "customer.replied",
    "mention",
    "automation",
    "sla.warning",
    "sla.breached",
)
CHANNELS = ("in_app", "email")

EMAIL_PENDING = text("email_pending")


class Notification(IdMixin, TimestampMixin, TenantMixin, Base):
    """One thing an agent was told. `in_feed` rows make the in-app feed; `email_pending` rows
    wait for the next digest email of their agent."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_feed", "workspace_id", "agent_id", "created_at", "id"),
        Index("ix_notifications_unread", "workspace_id", "agent_id", "in_feed", "read_at"),
        Index(
            "ix_notifications_email_pending",
            "workspace_id",
            "agent_id",
            postgresql_where=EMAIL_PENDING,
            sqlite_where=EMAIL_PENDING,
        ),
        Index("ix_notifications_email_batch", "email_batch_id"),
        Index("ix_notifications_ticket", "workspace_id", "ticket_id", "event"),
    )

    agent_id: Mapped[str] = mapped_column(String(36), ForeignKey("agents.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("tickets.id", ondelete="CASCADE"), default=None
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    in_feed: Mapped[bool] = mapped_column(Boolean, default=True)
    read_at: Mapped[int | None] = mapped_column(default=None)
    email_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    email_batch_id: Mapped[str | None] = mapped_column(String(36), default=None)
    emailed_at: Mapped[int | None] = mapped_column(default=None)


class NotificationSetting(IdMixin, TimestampMixin, TenantMixin, Base):
    """An agent's choice for one event; without a row the defaults apply (see `service`)."""

    __tablename__ = "notification_settings"
    __table_args__ = (UniqueConstraint("workspace_id", "agent_id", "event"),)

    agent_id: Mapped[str] = mapped_column(String(36), ForeignKey("agents.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    in_app: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[bool] = mapped_column(Boolean, default=False)
