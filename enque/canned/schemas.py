from __future__ import annotations

from typing import Annotated

from pydantic import Field

from enque.core.api import ApiInput, ApiModel, not_null

Name = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=2000)]
Content = Annotated[str, Field(min_length=1, max_length=100_000)]
Shortcut = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
Id = Annotated[str, Field(min_length=1, max_length=64)]


class CannedReplyOut(ApiModel):
    id: str
    name: str
    description: str | None
    content: str
    shortcut: str | None
    team_id: str | None
    is_enabled: bool
    usage_count: int
    created_by_id: str | None
    created_at: int
    updated_at: int


class CannedReplyIn(ApiInput):
    name: Name
    content: Content
    description: Description | None = None
    shortcut: Shortcut | None = None
    team_id: Id | None = None
    is_enabled: bool = True


class CannedReplyPatch(ApiInput):
    name: Name | None = None
    content: Content | None = None
    description: Description | None = None
    shortcut: Shortcut | None = None
    team_id: Id | None = None
    is_enabled: bool | None = None

    _not_null = not_null("name", "content", "is_enabled")


class RenderIn(ApiInput):
    ticket_id: Id


class RenderOut(ApiModel):
    canned_reply_id: str
    ticket_id: str
    content: str
    usage_count: int
