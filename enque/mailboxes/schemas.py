from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from enque.core.api import ApiInput, ApiModel, Email

Security = Literal["tls", "starttls", "none"]
Priority = Literal["Low", "Medium", "High", "Critical"]
Host = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*)|\[?[0-9A-Fa-f:.]+\]?)$",
    ),
]
Port = Annotated[int, Field(ge=1, le=65535)]
Folder = Annotated[str, Field(min_length=1, max_length=255)]
Secret = Annotated[str, Field(min_length=1, max_length=1024)]


class ImapIn(ApiInput):
    host: Host
    port: Port
    security: Security
    username: Annotated[str, Field(min_length=1, max_length=320)]
    password: Secret
    folder: Folder = "INBOX"


class SmtpIn(ApiInput):
    host: Host
    port: Port
    security: Security
    username: Annotated[str, Field(min_length=1, max_length=320)] | None = None
    password: Secret | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> SmtpIn:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self


class ImapMailboxIn(ApiInput):
    email: Email
    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    imap: ImapIn
    smtp: SmtpIn


class MailboxPatch(ApiInput):
    display_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    team_id: str | None = None
    default_priority: Priority | None = None
    default_category_id: str | None = None
    default_assignee_id: str | None = None
    is_active: bool | None = None
    folder: Folder | None = None

    @model_validator(mode="after")
    def _not_null(self) -> MailboxPatch:
        for name in ("display_name", "is_active", "folder"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ServerOut(ApiModel):
    host: str
    port: int
    security: str
    username: str | None


class MessageCounts(ApiModel):
    received: int = 0
    sent: int = 0
    failed: int = 0


class MailboxOut(ApiModel):
    """A mailbox as the API shows it: connection settings, never credentials."""

    id: str
    email: str
    display_name: str
    kind: str
    team_id: str | None
    default_priority: str | None
    default_category_id: str | None
    default_assignee_id: str | None
    folder: str
    is_active: bool
    state: str
    imap: ServerOut | None
    smtp: ServerOut | None
    last_sync_at: int | None
    last_error: str | None
    error_count: int
    message_counts: MessageCounts
    created_at: int
    updated_at: int


class ConnectOut(ApiModel):
    url: str


class SyncOut(ApiModel):
    """What one sync of a mailbox did."""

    mailbox_id: str
    fetched: int
    created: int
    commented: int
    ignored: int
    duplicates: int
    failed: int
    state: str
    error: str | None
