from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, TenantMixin, TimestampMixin


class SavedView(IdMixin, TimestampMixin, TenantMixin, Base):
    """A named inbox filter and sort: personal, shared with a team, or with the workspace."""

    __tablename__ = "saved_views"
    __table_args__ = (Index("ix_saved_views_workspace_scope", "workspace_id", "scope"),)

    owner_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(16))  # personal | team | workspace
    team_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("teams.id", ondelete="CASCADE"), default=None
    )
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sort: Mapped[str] = mapped_column(String(16), default="-updatedAt")
    position: Mapped[int] = mapped_column(default=0)
