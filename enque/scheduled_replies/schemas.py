from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from enque.comments.schemas import Addresses, Html, Id
from enque.core.api import ApiInput, ApiModel
from enque.tickets.schemas import Status

ScheduledStatus = Literal["pending", "sending", "sent", "cancelled", "failed"]


class ScheduledReplyOut(ApiModel):
    id: str
    ticket_id: str
    agent_id: str
    content: str
    to: list[str]
    cc: list[str] | None
    bcc: list[str]
    attachment_ids: list[str]
    ticket_status: str | None
    send_at: int
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: int | None
    sent_comment_id: str | None
    sent_at: int | None
    cancelled_at: int | None
    created_at: int
    updated_at: int


class ScheduledReplyIn(ApiInput):
    """A public reply (as `POST /v1/tickets/{id}/reply`) to send at `sendAt` (Unix seconds)."""

    content: Html
    send_at: Annotated[int, Field(ge=0, le=2**40)]
    to: Addresses = []
    cc: Addresses | None = None
    bcc: Addresses = []
    attachment_ids: Annotated[list[Id], Field(max_length=50)] = []
    ticket_status: Status | None = None
