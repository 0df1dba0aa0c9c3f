from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from enque.core.api import ApiInput, ApiModel

EventName = Literal[
    "ticket.assigned",
    "ticket.created",
    "customer.replied",
    "mention",
    "automation",
    "sla.warning",
    "sla.breached",
]
ChannelName = Literal["in_app", "email"]
Id = Annotated[str, Field(max_length=64)]


class NotificationOut(ApiModel):
    id: str
    event: str
    ticket_id: str | None
    payload: dict[str, Any]
    is_read: bool
    read_at: int | None
    created_at: int


class SettingOut(ApiModel):
    event: EventName
    enabled: bool
    channels: list[ChannelName]


class SettingIn(ApiInput):
    event: EventName
    enabled: bool | None = None
    channels: Annotated[list[ChannelName], Field(max_length=2)] | None = None


class SettingsPatch(ApiInput):
    settings: Annotated[list[SettingIn], Field(min_length=1, max_length=20)]


class ReadIn(ApiInput):
    """Mark the listed notifications read, or all of them (`all: true`)."""

    ids: Annotated[list[Id], Field(max_length=200)] = []
    all: bool = False

    @model_validator(mode="after")
    def _something(self) -> ReadIn:
        if not self.ids and not self.all:
            raise ValueError("give ids or all: true")
        return self


class ReadOut(ApiModel):
    updated: int
    unread_count: int
