from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, JSONType, TenantMixin, TimestampMixin
from enque.core.secrets import encrypted_column

KINDS = ("microsoft", "imap")
STATES = ("active", "needs_reconnect", "error")


class Mailbox(IdMixin, TimestampMixin, TenantMixin, Base):
    """An email channel. Secrets live only in `credentials` (encrypted); `settings` holds the
    rest of the connection (hosts, ports, user names, Microsoft user id)."""

    __tablename__ = "mailboxes"
    __table_args__ = (
        Index(
            "uq_mailboxes_workspace_email_live",
            "workspace_id",
            text("lower(email)"),
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
    )

    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[str | None] = mapped_column(String(36), default=None)
    default_priority: Mapped[str | None] = mapped_column(String(16), default=None)
    default_category_id: Mapped[str | None] = mapped_column(String(36), default=None)
    default_assignee_id: Mapped[str | None] = mapped_column(String(36), default=None)
    folder: Mapped[str] = mapped_column(String(255), default="INBOX")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(24), default="active")
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    credentials: Mapped[str | None] = encrypted_column()
    sync_cursor: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    last_sync_at: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    error_count: Mapped[int] = mapped_column(default=0)
    deleted_at: Mapped[int | None] = mapped_column(default=None)


class EmailMessage(IdMixin, TimestampMixin, TenantMixin, Base):
    """The idempotency ledger: every message seen or sent, once, with its outcome.

    Identity is the Message-ID per workspace; the provider id (Graph id, or IMAP
    `uidvalidity:uid`) per mailbox is the fallback. Both are unique constraints, so two
    concurrent ingests of one message cannot both commit.
    """

    __tablename__ = "email_messages"
    __table_args__ = (
        UniqueConstraint("workspace_id", "internet_message_id"),
        UniqueConstraint("mailbox_id", "provider_id"),
        Index("ix_email_messages_mailbox_conversation", "mailbox_id", "conversation_id"),
        Index("ix_email_messages_mailbox_direction", "mailbox_id", "direction"),
    )

    mailbox_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("mailboxes.id", ondelete="SET NULL"), default=None
    )
    direction: Mapped[str] = mapped_column(String(3))  # in, out
    provider_id: Mapped[str | None] = mapped_column(String(512), default=None)
    internet_message_id: Mapped[str | None] = mapped_column(String(900), default=None)
    in_reply_to: Mapped[str | None] = mapped_column(String(900), default=None)
    references: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    conversation_id: Mapped[str | None] = mapped_column(String(255), default=None)
    ticket_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    comment_id: Mapped[str | None] = mapped_column(String(36), default=None)
    raw_size: Mapped[int] = mapped_column(default=0)
    received_at: Mapped[int | None] = mapped_column(default=None)
    # processed, ignored (loop/bounce/auto-reply), failed (dead letter), pending, sent
    state: Mapped[str] = mapped_column(String(16), default="processed")
    classification: Mapped[str | None] = mapped_column(String(16), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class MicrosoftApp(IdMixin, TimestampMixin, TenantMixin, Base):
    """A workspace's own Microsoft Entra app (else the one from configuration is used).

    `client_secret` is sealed as `{"secret": …}`.
    """

    __tablename__ = "microsoft_apps"
    __table_args__ = (UniqueConstraint("workspace_id"),)

    tenant_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))
    client_secret: Mapped[str | None] = encrypted_column()
