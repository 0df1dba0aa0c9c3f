from __future__ import annotations

from typing import Annotated

from pydantic import Field

from enque.core.api import ApiInput, ApiModel, not_null

AgentIds = Annotated[list[str], Field(max_length=1000)]


class TeamOut(ApiModel):
    id: str
    name: str
    description: str | None
    icon: str | None
    manager_id: str | None
    member_ids: list[str]
    created_at: int
    updated_at: int


class TeamIn(ApiInput):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str | None, Field(max_length=2000)] = None
    icon: Annotated[str | None, Field(max_length=64)] = None
    manager_id: str | None = None
    agent_ids: AgentIds = []


class TeamPatchIn(ApiInput):
    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    description: Annotated[str | None, Field(max_length=2000)] = None
    icon: Annotated[str | None, Field(max_length=64)] = None
    manager_id: str | None = None

    _not_null = not_null("name")


class TeamMembersIn(ApiInput):
    agent_ids: AgentIds
