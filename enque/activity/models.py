from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, JSONType, TenantMixin, now


class Activity(IdMixin, TenantMixin, Base):
    """The audit log: append-only, one row per change."""

    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_subject", "workspace_id", "subject_type", "subject_id", "id"),
    )

    actor_type: Mapped[str] = mapped_column(String(16))  # agent, user, system, automation
    actor_id: Mapped[str | None] = mapped_column(String(36), default=None)
    verb: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(36))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
