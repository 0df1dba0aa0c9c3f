from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, JSONType, TenantMixin, TimestampMixin

LIVE = text("deleted_at IS NULL")


class Company(IdMixin, TimestampMixin, TenantMixin, Base):
    """An organisation customers belong to; its email domains link new customers to it."""

    __tablename__ = "companies"
    __table_args__ = (Index("ix_companies_workspace_name", "workspace_id", "name", "id"),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    email_domains: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    logo_url: Mapped[str | None] = mapped_column(String(1024), default=None)
    # no foreign key: users reference companies, a cycle SQLite migrations cannot alter in
    primary_contact_id: Mapped[str | None] = mapped_column(String(36), default=None)
    account_manager_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    deleted_at: Mapped[int | None] = mapped_column(default=None)


class CompanyDomain(IdMixin, TenantMixin, Base):
    """Index of `Company.email_domains`: one domain belongs to one company per workspace."""

    __tablename__ = "company_domains"
    __table_args__ = (UniqueConstraint("workspace_id", "domain"),)

    company_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253))


class User(IdMixin, TimestampMixin, TenantMixin, Base):
    """A customer: writes to the help desk, never signs in to the agent API."""

    __tablename__ = "users"
    __table_args__ = (
        Index(
            "uq_users_workspace_email",
            "workspace_id",
            text("lower(email)"),
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        ),
        Index("ix_users_workspace_name", "workspace_id", "name", "id"),
        Index("ix_users_workspace_company", "workspace_id", "company_id"),
    )

    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64), default=None)
    avatar_url: Mapped[str | None] = mapped_column(String(1024), default=None)
    company_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("companies.id", ondelete="SET NULL"), default=None
    )
    notes: Mapped[str | None] = mapped_column(Text, default=None)
    is_blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[int | None] = mapped_column(default=None)
