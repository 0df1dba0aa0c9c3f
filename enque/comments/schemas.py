from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from enque.core.api import ApiInput, ApiModel, Email
from enque.tickets.schemas import Status

Html = Annotated[str, Field(min_length=1, max_length=2_000_000)]
Id = Annotated[str, Field(min_length=1, max_length=64)]
Addresses = Annotated[list[Email], Field(max_length=50)]


class AuthorOut(ApiModel):
    type: str
    id: str | None
    name: str | None


class CommentOut(ApiModel):
    id: str
    ticket_id: str
    kind: str
    author: AuthorOut
    content: str
    text: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    mentions: list[str]
    message_id: str | None
    in_reply_to: str | None
    delivery: str | None
    delivery_error: str | None
    delivery_attempts: int
    attachments: list[dict[str, Any]]
    created_at: int
    updated_at: int


class ReplyIn(ApiInput):
    content: Html
    to: Addresses = []
    cc: Addresses | None = None
    bcc: Addresses = []
    attachment_ids: Annotated[list[Id], Field(max_length=50)] = []
    status: Status | None = None


class NoteIn(ApiInput):
    content: Html
    attachment_ids: Annotated[list[Id], Field(max_length=50)] = []
    mentions: Annotated[list[Id], Field(max_length=50)] = []


class NotePatch(ApiInput):
    content: Html
