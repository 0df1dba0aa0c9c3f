from __future__ import annotations

from typing import Annotated

from pydantic import Field

from enque.core.api import ApiInput, ApiModel

Scope = Annotated[str, Field(min_length=3, max_length=64)]


class ApiTokenIn(ApiInput):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=64)]


class ApiTokenOut(ApiModel):
    id: str
    name: str
    scopes: list[str]
    prefix: str
    created_by_id: str
    last_used_at: int | None
    revoked_at: int | None
    created_at: int


class ApiTokenCreatedOut(ApiTokenOut):
    token: str  # shown once, never again
