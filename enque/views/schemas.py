from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from enque.core.api import ApiInput, ApiModel, not_null
from enque.tickets.schemas import Priority, Sort, Status

Scope = Literal["personal", "team", "workspace"]
Id = Annotated[str, Field(max_length=64)]


class ViewFilters(ApiInput):
    """The filters of `GET /v1/tickets`, as one object (`cf` is `{key: value}`)."""

    status: list[Status] = []
    priority: list[Priority] = []
    assignee_id: Id | None = None
    team_id: Id | None = None
    category_id: Id | None = None
    user_id: Id | None = None
    company_id: Id | None = None
    mailbox_id: Id | None = None
    tag: Annotated[str | None, Field(max_length=50)] = None
    q: Annotated[str | None, Field(max_length=500)] = None
    created_after: int | None = None
    created_before: int | None = None
    updated_after: int | None = None
    updated_before: int | None = None
    include_merged: bool = False
    breached: bool | None = None
    cf: Annotated[dict[str, Any], Field(max_length=20)] = {}


class ViewIn(ApiInput):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    filters: ViewFilters = ViewFilters()
    sort: Sort = "-updatedAt"
    shared: Scope = "personal"
    team_id: Id | None = None
    position: Annotated[int, Field(ge=0, le=100000)] = 0


class ViewPatchIn(ApiInput):
    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    filters: ViewFilters | None = None
    sort: Sort | None = None
    shared: Scope | None = None
    team_id: Id | None = None
    position: Annotated[int | None, Field(ge=0, le=100000)] = None

    _not_null = not_null("name", "filters", "sort", "shared", "position")


class ViewOut(ApiModel):
    id: str
    name: str
    filters: dict[str, Any]
    sort: str
    shared: str
    team_id: str | None
    owner_id: str
    position: int
    created_at: int
    updated_at: int


class ViewCountOut(ApiModel):
    id: str
    count: int
