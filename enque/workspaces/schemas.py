from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from enque.core.api import ApiInput, ApiModel, not_null


class WorkspaceOut(ApiModel):
    id: str
    name: str
    subdomain: str
    timezone: str
    settings: dict[str, Any]
    is_active: bool
    created_at: int
    updated_at: int


class MyWorkspaceOut(WorkspaceOut):
    """A workspace in the caller's list, with the role held there."""

    role: str


class WorkspacePatchIn(ApiInput):
    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    timezone: Annotated[str | None, Field(min_length=1, max_length=64)] = None
    settings: dict[str, Any] | None = None

    _not_null = not_null("name", "timezone", "settings")
