from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, JSONType, TenantMixin, TimestampMixin, now


class Automation(IdMixin, TimestampMixin, TenantMixin, Base):
    """A rule: when `trigger` happens and the conditions hold, run the actions (wire shape)."""

    __tablename__ = "automations"
    __table_args__ = (
        Index("ix_automations_rules", "workspace_id", "trigger", "is_active", "position"),
    )

    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    trigger: Mapped[str] = mapped_column(String(32))
    trigger_config: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    match: Mapped[str] = mapped_column(String(3), default="all")
    conditions: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    actions: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    position: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    run_count: Mapped[int] = mapped_column(default=0)
    last_run_at: Mapped[int | None] = mapped_column(default=None)
    deleted_at: Mapped[int | None] = mapped_column(default=None)


class RoundRobinCursor(TenantMixin, Base):
    """How many tickets a team has handed out by round robin; advanced atomically."""

    __tablename__ = "round_robin_cursors"

    team_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    counter: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now, onupdate=now)


class AutomationRun(IdMixin, TenantMixin, Base):
    """Ledger of time-based rules: one row per rule, ticket and window of the anchor time.

    `matched` rows claim the window (a unique key makes the claim idempotent across workers);
    unmatched rows remember that the rule's content conditions failed at `ran_at`, so the
    ticket is not evaluated again until it changes.
    """

    __tablename__ = "automation_runs"
    __table_args__ = (UniqueConstraint("automation_id", "ticket_id", "anchor_at"),)

    automation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("automations.id", ondelete="CASCADE")
    )
    ticket_id: Mapped[str] = mapped_column(String(36))
    anchor_at: Mapped[int] = mapped_column(BigInteger)
    matched: Mapped[bool] = mapped_column(Boolean)
    ran_at: Mapped[int] = mapped_column(BigInteger, default=now)
