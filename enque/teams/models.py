from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, TenantMixin, TimestampMixin

LIVE = text("deleted_at IS NULL")


class Team(IdMixin, TimestampMixin, TenantMixin, Base):
    """A group of agents; deleting one is soft and frees its name."""

    __tablename__ = "teams"
    __table_args__ = (
        Index(
            "uq_teams_live_name",
            "workspace_id",
            text("lower(name)"),
            unique=True,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    icon: Mapped[str | None] = mapped_column(String(64), default=None)
    manager_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    deleted_at: Mapped[int | None] = mapped_column(default=None)


class TeamMember(IdMixin, TimestampMixin, TenantMixin, Base):
    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team_id", "agent_id"),)

    team_id: Mapped[str] = mapped_column(String(36), ForeignKey("teams.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
