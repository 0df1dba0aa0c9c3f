from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, JSONType, TenantMixin, TimestampMixin

ROLES = ("admin", "manager", "agent")


class Agent(IdMixin, TimestampMixin, Base):
    """A person who works tickets; may belong to several workspaces."""

    __tablename__ = "agents"
    __table_args__ = (Index("uq_agents_email_lower", text("lower(email)"), unique=True),)

    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    auth_method: Mapped[str] = mapped_column(String(16), default="password")
    microsoft_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    avatar_url: Mapped[str | None] = mapped_column(String(1024), default=None)
    job_title: Mapped[str | None] = mapped_column(String(200), default=None)
    phone: Mapped[str | None] = mapped_column(String(64), default=None)
    signature: Mapped[str | None] = mapped_column(Text, default=None)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_login_at: Mapped[int | None] = mapped_column(default=None)
    token_version: Mapped[int] = mapped_column(default=0)


class AgentWorkspace(IdMixin, TimestampMixin, Base):
    """Membership of an agent in a workspace, with the role held there."""

    __tablename__ = "agent_workspaces"
    __table_args__ = (UniqueConstraint("workspace_id", "agent_id"),)

    workspace_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    agent_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16), default="agent")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class AgentInvitation(IdMixin, TimestampMixin, TenantMixin, Base):
    __tablename__ = "agent_invitations"

    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    team_ids: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    expires_at: Mapped[int] = mapped_column()
    accepted_at: Mapped[int | None] = mapped_column(default=None)
    revoked_at: Mapped[int | None] = mapped_column(default=None)


class PasswordReset(IdMixin, TimestampMixin, Base):
    __tablename__ = "password_resets"

    agent_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[int] = mapped_column()
    used_at: Mapped[int | None] = mapped_column(default=None)
