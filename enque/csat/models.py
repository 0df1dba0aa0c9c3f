from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, TenantMixin, TimestampMixin


class CsatSettings(TimestampMixin, Base):
    """Whether closing a ticket mails its customer a satisfaction survey."""

    __tablename__ = "csat_settings"

    workspace_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(default=False)


class CsatResponse(IdMixin, TimestampMixin, TenantMixin, Base):
    """One survey sent after a close: a single-use link, then the rating and comment."""

    __tablename__ = "csat_responses"
    __table_args__ = (
        Index("ix_csat_responses_ticket", "workspace_id", "ticket_id"),
        Index("ix_csat_responses_responded", "workspace_id", "responded_at"),
    )

    ticket_id: Mapped[str] = mapped_column(String(36), ForeignKey("tickets.id", ondelete="CASCADE"))
    agent_id: Mapped[str | None] = mapped_column(String(36), default=None)  # assignee at close
    team_id: Mapped[str | None] = mapped_column(String(36), default=None)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    sent_to: Mapped[str] = mapped_column(String(320))
    expires_at: Mapped[int] = mapped_column()
    rating: Mapped[int | None] = mapped_column(default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    responded_at: Mapped[int | None] = mapped_column(default=None)
