from __future__ import annotations

from typing import Annotated

from pydantic import Field

from enque.core.api import ApiInput, ApiModel


class CsatSettingsIn(ApiInput):
    enabled: bool


class CsatSettingsOut(ApiModel):
    enabled: bool


class SurveyOut(ApiModel):
    ticket_number: int
    subject: str
    workspace_name: str
    answered: bool


class AnswerIn(ApiInput):
    rating: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str | None, Field(max_length=5000)] = None


class AnswerOut(ApiModel):
    rating: int
    comment: str | None
    responded_at: int


class CsatResponseOut(ApiModel):
    id: str
    sent_to: str
    agent_id: str | None
    team_id: str | None
    rating: int | None
    comment: str | None
    responded_at: int | None
    created_at: int


class CsatReportOut(ApiModel):
    group_id: str | None
    sent: int
    answered: int
    average_rating: float | None
    satisfied: float | None
