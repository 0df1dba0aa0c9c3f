from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from enque.core.api import ApiInput, ApiModel, not_null

Clock = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]
Minutes = Annotated[int, Field(ge=1, le=525600)]


class IntervalIn(ApiInput):
    day: Annotated[int, Field(ge=0, le=6)]
    start: Clock
    end: Clock


class BusinessHoursIn(ApiInput):
    timezone: Annotated[str, Field(min_length=1, max_length=64)]
    intervals: Annotated[list[IntervalIn], Field(max_length=100)]
    holidays: Annotated[list[Annotated[str, Field(max_length=10)]], Field(max_length=1000)] = []


class IntervalOut(ApiModel):
    day: int
    start: str
    end: str


class BusinessHoursOut(ApiModel):
    timezone: str
    intervals: list[IntervalOut]
    holidays: list[str]
    always_open: bool


class MatchIn(ApiInput):
    priority: Literal["Low", "Medium", "High", "Critical"] | None = None
    team_id: str | None = None
    mailbox_id: str | None = None
    company_id: str | None = None


class TargetsIn(ApiInput):
    first_response_minutes: Minutes | None = None
    next_response_minutes: Minutes | None = None
    resolution_minutes: Minutes | None = None


class SlaPolicyIn(ApiInput):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    match: MatchIn = MatchIn()
    targets: TargetsIn
    position: Annotated[int, Field(ge=0, le=100000)] = 0


class SlaPolicyPatchIn(ApiInput):
    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    match: MatchIn | None = None
    targets: TargetsIn | None = None
    position: Annotated[int | None, Field(ge=0, le=100000)] = None

    _not_null = not_null("name", "match", "targets", "position")


class TargetsOut(ApiModel):
    first_response_minutes: int | None
    next_response_minutes: int | None
    resolution_minutes: int | None


class SlaPolicyOut(ApiModel):
    id: str
    name: str
    match: dict[str, str]
    targets: TargetsOut
    position: int
    created_at: int
    updated_at: int


class TicketSlaOut(ApiModel):
    ticket_id: str
    policy_id: str | None
    first_response_due_at: int | None
    next_response_due_at: int | None
    resolution_due_at: int | None
    next_due_at: int | None
    paused_at: int | None
    breached: list[str]
    is_breached: bool


class SlaTicketOut(TicketSlaOut):
    number: int
    subject: str
    status: str
    priority: str
    team_id: str | None
    assignee_id: str | None


class AttainmentOut(ApiModel):
    group_id: str | None
    tickets: int
    breached: int
    attainment: float | None
