from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from enque.core.api import ApiInput, ApiModel, not_null

Url = Annotated[str, Field(min_length=8, max_length=2000)]
Events = Annotated[list[Annotated[str, Field(max_length=100)]], Field(min_length=1, max_length=100)]


class WebhookIn(ApiInput):
    url: Url
    events: Events
    is_active: bool = True
    secret: Annotated[str | None, Field(min_length=16, max_length=200)] = None


class WebhookPatchIn(ApiInput):
    url: Url | None = None
    events: Events | None = None
    is_active: bool | None = None

    _not_null = not_null("url", "events", "is_active")


class WebhookOut(ApiModel):
    id: str
    url: str
    events: list[str]
    is_active: bool
    failure_count: int
    disabled_at: int | None
    created_at: int
    updated_at: int


class WebhookCreatedOut(WebhookOut):
    secret: str  # shown once


class DeliveryOut(ApiModel):
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: int | None
    status_code: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: int | None
    delivered_at: int | None
    created_at: int
    body: dict[str, Any]
