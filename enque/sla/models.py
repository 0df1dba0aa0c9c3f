from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, literal_column
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnClause

from enque.core.db import Base, IdMixin, TenantMixin, TimestampMixin

NOT_DUE = 9223372036854775807
# "Due soonest" puts tickets with nothing due last; the indexes hold the same expression
# (a literal, never a bind parameter, so both planners match it).
SLA_DUE_KEY: ColumnClause[int] = literal_column(f"coalesce(next_due_at, {NOT_DUE})")


class BusinessHours(IdMixin, TimestampMixin, TenantMixin, Base):
    """The working calendar of a workspace (one row; none means 24/7)."""

    __tablename__ = "business_hours"
    __table_args__ = (UniqueConstraint("workspace_id"),)

    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    intervals: Mapped[list[Any]] = mapped_column(default=list)  # [{day, start, end}]
    holidays: Mapped[list[Any]] = mapped_column(default=list)  # ["YYYY-MM-DD"]


class SlaPolicy(IdMixin, TimestampMixin, TenantMixin, Base):
    """Targets in business minutes for the tickets its `match` selects (first match wins)."""

    __tablename__ = "sla_policies"
    __table_args__ = (Index("ix_sla_policies_workspace_position", "workspace_id", "position"),)

    name: Mapped[str] = mapped_column(String(200))
    match: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_response_minutes: Mapped[int | None] = mapped_column(default=None)
    next_response_minutes: Mapped[int | None] = mapped_column(default=None)
    resolution_minutes: Mapped[int | None] = mapped_column(default=None)
    position: Mapped[int] = mapped_column(default=0)


class TicketSla(TimestampMixin, TenantMixin, Base):
    """The SLA state of one ticket, kept in step with the ticket by a reaction."""

    __tablename__ = "ticket_sla"
    __table_args__ = (
        Index("ix_ticket_sla_due", "workspace_id", SLA_DUE_KEY, "ticket_id"),
        Index("ix_ticket_sla_breached", "workspace_id", "is_breached", SLA_DUE_KEY, "ticket_id"),
        Index("ix_ticket_sla_next_due", "next_due_at"),  # the due-check job
    )

    ticket_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    policy_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("sla_policies.id", ondelete="SET NULL"), default=None
    )
    first_response_due_at: Mapped[int | None] = mapped_column(default=None)
    next_response_due_at: Mapped[int | None] = mapped_column(default=None)
    resolution_due_at: Mapped[int | None] = mapped_column(default=None)
    next_due_at: Mapped[int | None] = mapped_column(default=None)  # soonest unmet, unpaused
    paused_at: Mapped[int | None] = mapped_column(default=None)
    paused_seconds: Mapped[int] = mapped_column(default=0)  # business seconds spent paused
    breached: Mapped[list[Any]] = mapped_column(default=list)  # target names
    warned: Mapped[list[Any]] = mapped_column(default=list)
    is_breached: Mapped[bool] = mapped_column(default=False)
