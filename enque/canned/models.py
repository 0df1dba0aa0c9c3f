from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, TenantMixin, TimestampMixin

LIVE = text("deleted_at IS NULL")
LIVE_SHORTCUT = text("deleted_at IS NULL AND shortcut IS NOT NULL")


class CannedReply(IdMixin, TimestampMixin, TenantMixin, Base):
    """A saved answer with placeholders; scoped to the workspace, or to one team."""

    __tablename__ = "canned_replies"
    __table_args__ = (
        Index("ix_canned_replies_workspace_name", "workspace_id", "name", "id"),
        Index(
            "uq_canned_replies_workspace_shortcut",
            "workspace_id",
            text("lower(shortcut)"),
            unique=True,
            sqlite_where=LIVE_SHORTCUT,
            postgresql_where=LIVE_SHORTCUT,
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    content: Mapped[str] = mapped_column(Text)
    shortcut: Mapped[str | None] = mapped_column(String(64), default=None)
    team_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("teams.id", ondelete="SET NULL"), default=None, index=True
    )
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    usage_count: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    deleted_at: Mapped[int | None] = mapped_column(default=None)
