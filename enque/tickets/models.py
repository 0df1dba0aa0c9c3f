from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.orm import Mapped, mapped_column, validates
from sqlalchemy.sql.elements import ColumnClause

from enque.core.db import Base, IdMixin, JSONType, TenantMixin, TimestampMixin

STATUSES = ("Unread", "Open", "In Progress", "With User", "Closed")
PRIORITIES = ("Low", "Medium", "High", "Critical")
PRIORITY_WEIGHT = {name: weight for weight, name in enumerate(PRIORITIES, start=1)}

NO_DUE_DATE = 9223372036854775807
# `dueAt` sorts tickets without a due date last; the index holds the same expression.
# A literal (never a bind parameter) so both planners match the expression index.
DUE_KEY: ColumnClause[int] = literal_column(f"coalesce(due_at, {NO_DUE_DATE})")


def _workspace() -> Mapped[str]:
    """The tenant column; no single-column index, the composite indexes all lead with it."""
    return mapped_column(String(36), ForeignKey("workspaces.id", ondelete="CASCADE"))


def _list_index(column: str) -> Index:
    return Index(
        f"ix_tickets_workspace_{column}_updated", "workspace_id", column, "updated_at", "id"
    )


class TicketCounter(Base):
    """The last ticket number given out in a workspace; incremented in the creating transaction."""

    __tablename__ = "ticket_counters"

    workspace_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    last_number: Mapped[int] = mapped_column(BigInteger, default=0)


class Ticket(IdMixin, TimestampMixin, Base):
    """A conversation with a customer. Bodies live in `ticket_bodies`, so lists never load them."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("workspace_id", "number"),
        Index("ix_tickets_workspace_updated", "workspace_id", "updated_at", "id"),
        Index("ix_tickets_workspace_created", "workspace_id", "created_at", "id"),
        Index("ix_tickets_workspace_due", "workspace_id", DUE_KEY, "id"),
        _list_index("status"),
        _list_index("priority_weight"),
        _list_index("assignee_id"),
        _list_index("team_id"),
        _list_index("user_id"),
        _list_index("company_id"),
        _list_index("category_id"),
        _list_index("mailbox_id"),
        Index("ix_tickets_workspace_merged_into", "workspace_id", "merged_into_ticket_id"),
        Index("ix_tickets_workspace_conversation", "workspace_id", "conversation_id"),
    )
    workspace_id: Mapped[str] = _workspace()
    number: Mapped[int] = mapped_column(BigInteger)
    subject: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    priority_weight: Mapped[int] = mapped_column(SmallInteger)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"))
    company_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("companies.id", ondelete="SET NULL"), default=None
    )
    assignee_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    team_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("teams.id", ondelete="SET NULL"), default=None
    )
    category_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("categories.id", ondelete="SET NULL"), default=None
    )
    # the mailboxes table belongs to the email domain, which checks the id (see seams.py)
    mailbox_id: Mapped[str | None] = mapped_column(String(36), default=None)
    tags: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    cc: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    due_at: Mapped[int | None] = mapped_column(default=None)
    is_read: Mapped[bool] = mapped_column(Boolean, default=False)
    first_response_at: Mapped[int | None] = mapped_column(default=None)
    resolved_at: Mapped[int | None] = mapped_column(default=None)
    closed_at: Mapped[int | None] = mapped_column(default=None)
    last_customer_reply_at: Mapped[int | None] = mapped_column(default=None)
    last_agent_reply_at: Mapped[int | None] = mapped_column(default=None)
    merged_into_ticket_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("tickets.id", ondelete="SET NULL"), default=None
    )
    merged_at: Mapped[int | None] = mapped_column(default=None)
    linked_ticket_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("tickets.id", ondelete="SET NULL"), default=None
    )
    deleted_at: Mapped[int | None] = mapped_column(default=None)
    version: Mapped[int] = mapped_column(BigInteger)  # optimistic lock, kept by the ORM
    conversation_id: Mapped[str | None] = mapped_column(String(255), default=None)
    root_message_id: Mapped[str | None] = mapped_column(String(998), default=None)

    __mapper_args__ = {"version_id_col": version}

    @validates("priority")
    def _weigh(self, _key: str, value: str) -> str:
        self.priority_weight = PRIORITY_WEIGHT[value]
        return value


class TicketBody(IdMixin, TimestampMixin, TenantMixin, Base):
    """The first message of a ticket: as received, sanitized for display, and as plain text."""

    __tablename__ = "ticket_bodies"

    ticket_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tickets.id", ondelete="CASCADE"), unique=True
    )
    original_html: Mapped[str] = mapped_column(Text, default="")
    sanitized_html: Mapped[str] = mapped_column(Text, default="")
    plain_text: Mapped[str] = mapped_column(Text, default="")


class TicketTag(IdMixin, Base):
    """Index of `Ticket.tags`, so the `tag` filter is an index lookup."""

    __tablename__ = "ticket_tags"
    __table_args__ = (
        UniqueConstraint("ticket_id", "tag"),
        Index("ix_ticket_tags_workspace_tag", "workspace_id", "tag", "ticket_id"),
    )

    workspace_id: Mapped[str] = _workspace()
    ticket_id: Mapped[str] = mapped_column(String(36), ForeignKey("tickets.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(50))
