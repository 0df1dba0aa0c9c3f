from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, TenantMixin, TimestampMixin


class WorkspaceSignature(IdMixin, TimestampMixin, TenantMixin, Base):
    """The workspace's signature, appended to every public reply before the agent's own."""

    __tablename__ = "workspace_signatures"
    __table_args__ = (UniqueConstraint("workspace_id"),)

    content: Mapped[str] = mapped_column(Text, default="")
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
